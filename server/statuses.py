"""The HTTP status each core error code (detector/errors.py) is answered with: one table, free of Flask, read by the
HTTP layer (server/errors.py) and by the job layer to tell a failure on our side from a fault of the input."""

from __future__ import annotations

from detector.errors import DetectorError

# The status a core error (detector/errors.py, and the shells' own DetectorError subclasses) is answered with, by its
# stable code; a code not listed takes its nearest base class's, else 500. The one place these statuses are decided.
HTTP_STATUS = {
    "detector_error": 500,
    # the input
    "bad_media": 422,
    "unsupported_media": 415,
    "file_not_found": 404,
    "empty_media": 422,
    "corrupt_media": 422,
    "media_too_large": 413,
    "media_too_long": 413,
    # models
    "model_error": 500,
    "model_not_found": 404,
    "unknown_model": 400,
    "model_format": 422,
    "model_file_missing": 422,
    "model_offline": 503,
    "model_upload_failed": 502,
    "face_detector": 500,
    # links and fetching
    "bad_url": 400,
    "invalid_url": 400,
    "unsupported_url_scheme": 400,
    "unsafe_url": 400,
    "host_not_found": 400,
    "no_media_found": 422,
    "fetch_failed": 502,
    "host_lookup_failed": 502,
    "fetch_timeout": 504,
    # this machine
    "insufficient_storage": 507,
    # the shells' and tools' own
    "bad_input": 400,
    "bad_option": 400,
    "bad_dataset": 422,
    "bad_evaluation_report": 422,
}


def http_status(exc: DetectorError) -> int:
    """The HTTP status of a core error: its code's in `HTTP_STATUS`, else its nearest base class's, else 500."""
    return class_status(type(exc))


def class_status(error_class: type) -> int:
    """The HTTP status of a core error class (see `http_status`)."""
    for cls in error_class.__mro__:
        status = HTTP_STATUS.get(getattr(cls, "code", None))
        if status is not None:
            return status
    return 500
