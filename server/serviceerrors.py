"""Typed errors of the server's service and job layers (server/analysis.py, the job queues): each with a stable
`code`, a message a user can act on, whether the same job may succeed later (`retryable`) and, for a refusal that
passes, how long to wait (`retry_after_s`). They know nothing of HTTP: server/errors.py maps them to statuses, once.
"""

from __future__ import annotations

from detector.errors import DetectorError

from .statuses import http_status


class ServiceError(Exception):
    """Base class of every error the service and job layers raise on purpose."""

    code = "service_error"
    retryable = False

    def __init__(self, message: str, *, retry_after_s: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class BadRequest(ServiceError):
    """A request's field has the wrong type or is missing."""

    code = "bad_request"


class BadOption(BadRequest):
    """An analysis option (model, frames) out of what the server offers."""

    code = "bad_option"


class JobNotFound(ServiceError):
    code = "not_found"


class NotRetryable(ServiceError):
    """A retry of a job that has not failed, or whose failure would only repeat."""

    code = "not_retryable"


class QueueFull(ServiceError):
    """`queue_size` jobs already wait: a refusal that passes."""

    code = "queue_full"
    retryable = True


class TooManyJobs(ServiceError):
    """The client already has `client_url_jobs` links waiting for a fetch."""

    code = "too_many_jobs"
    retryable = True


class JobTimeout(ServiceError):
    """An analysis ran past the job time limit (DEEPFAKE_JOB_TIMEOUT_S) and was stopped."""

    code = "job_timeout"
    retryable = True


class UploadGone(ServiceError):
    """The media a job waited with is no longer there (expired, deleted): it must be sent again."""

    code = "upload_gone"


class CacheMiss(ServiceError):
    """The earlier analysis a cache hit pointed at was deleted meanwhile."""

    code = "cache_miss"
    retryable = True


# What a job left running by a process that is gone is marked with (the job queues' recovery).
INTERRUPTED = "interrupted"
# What a link that waited too long for a fetch worker is marked with (server/jobqueue.py).
FETCH_QUEUE_TIMEOUT = "fetch_queue_timeout"


def may_succeed_later(exc: BaseException) -> bool:
    """Whether the same job, run again, may succeed: a refusal that passes, a source or a database that fails now;
    never a fault of the input (bad media, a bad link, an option not offered). Bugs count as passing failures."""
    if isinstance(exc, ServiceError):
        return exc.retryable
    if isinstance(exc, DetectorError):
        return http_status(exc) >= 500  # failures on our side or the source's (a source down, a timeout) map to 5xx
    return True
