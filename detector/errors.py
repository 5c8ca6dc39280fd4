"""Typed errors raised at the edge of the core; each shell maps them once to an HTTP status, a UI message or a badge.

Every error carries a stable machine-readable `code` and a message a user can act on. The core knows nothing of
HTTP: the web shell's table of statuses by code is server/errors.py (`HTTP_STATUS`).
"""

from __future__ import annotations

import errno


class DetectorError(Exception):
    """Base class of every error the core raises on purpose."""

    code = "detector_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class MediaError(DetectorError):
    """The input is not media we can analyse."""

    code = "bad_media"


class UnsupportedMediaError(MediaError):
    code = "unsupported_media"


class MissingMediaError(UnsupportedMediaError):
    """The path given names no file (a typo, a file moved): not a question of what kind of media it is."""

    code = "file_not_found"


class EmptyMediaError(MediaError):
    code = "empty_media"


class CorruptMediaError(MediaError):
    code = "corrupt_media"


class MediaTooLargeError(MediaError):
    code = "media_too_large"


class MediaTooLongError(MediaError):
    code = "media_too_long"


class ModelError(DetectorError):
    """A model could not be found or loaded."""

    code = "model_error"


class ModelNotFoundError(ModelError):
    code = "model_not_found"


class ModelNotOfferedError(ModelError):
    """A request named a model this service does not offer."""

    code = "unknown_model"


class ModelFormatError(ModelError):
    code = "model_format"


class ModelOfflineError(ModelError):
    code = "model_offline"


class ModelFileMissingError(ModelFormatError):
    """A checkpoint (a folder or a Hub repository) lacks a file the format requires, e.g. model.safetensors."""

    code = "model_file_missing"


class ModelUploadError(ModelError):
    """Publishing a checkpoint to the Hub failed: no write access, a refused commit, the Hub unreachable."""

    code = "model_upload_failed"


class FaceDetectorError(DetectorError):
    code = "face_detector"


class UrlError(DetectorError):
    """A URL given to fetch media from cannot or must not be fetched."""

    code = "bad_url"


class InvalidUrlError(UrlError):
    code = "invalid_url"


class UnsupportedUrlSchemeError(UrlError):
    """blob:, data:, file:, javascript: ... anything but http(s)."""

    code = "unsupported_url_scheme"


class UnsafeUrlError(UrlError):
    """The URL (or a redirect, playlist or fragment it leads to) points at a private or special address."""

    code = "unsafe_url"


class NoMediaFoundError(UrlError):
    """The page was fetched but holds no image or video we can take (or only a live stream)."""

    code = "no_media_found"


class FetchError(DetectorError):
    """The source failed: unreachable, an HTTP error, a broken download."""

    code = "fetch_failed"


class HostNotFoundError(UrlError):
    """The URL's host name does not exist: the user's input, not a failure of the source."""

    code = "host_not_found"


class HostLookupError(FetchError):
    """The host name could not be looked up just now (a DNS failure that may pass): worth retrying."""

    code = "host_lookup_failed"


class FetchTimeoutError(FetchError):
    code = "fetch_timeout"


class StorageFullError(DetectorError):
    """This machine's disk (or the quota, or the file-size limit) is full: not the fault of the media or its source."""

    code = "insufficient_storage"

    def __init__(self, message: str = "the server's disk is full; retry later"):
        super().__init__(message)


# ENOSPC: no space left; EDQUOT: quota exceeded; EFBIG: over the file-size limit of the process or filesystem.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def storage_error(exc: BaseException | None) -> StorageFullError | None:
    """A StorageFullError when `exc`, or an exception it was raised from, is a write refused for want of space."""
    for _ in range(8):  # the chain of causes, bounded
        if exc is None:
            return None
        if isinstance(exc, StorageFullError):
            return exc
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return StorageFullError()
        exc = exc.__cause__ or exc.__context__
    return None
