"""The one exception hierarchy of headstart. HTTP status codes are mapped from it in one place."""

from __future__ import annotations


class HeadstartError(Exception):
    """Base of every error that headstart raises on purpose; the message is for the user.

    `code` names the kind of error in the API's error bodies and on a failed job.
    """

    code = "internal"

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class Invalid(HeadstartError):
    """The request or the uploaded file is malformed or breaks a rule."""

    code = "invalid"


class NotFound(HeadstartError):
    """The thing does not exist, or the caller may not know that it does (private models)."""

    code = "not_found"


class Forbidden(HeadstartError):
    """The caller can see the thing but may not change it."""

    code = "forbidden"


class TooLarge(HeadstartError):
    """A size limit set by the operator was exceeded; the message names the limit and the size."""

    code = "too_large"


class Conflict(HeadstartError):
    """The request clashes with the catalog's state, such as deleting a dataset."""

    code = "conflict"


class WeightsUnavailable(Invalid):
    """Pretrained weights could not be loaded from Keras' cache or the network."""


class Cancelled(HeadstartError):
    """A job stopped because its owner asked it to."""

    code = "cancelled"


def error_code(error: BaseException) -> str:
    """The code of an error as the API names it; any error not raised on purpose is "internal"."""
    return error.code if isinstance(error, HeadstartError) else "internal"


def error_class(code: str | None) -> type[HeadstartError]:
    """The error class an API code names (HeadstartError for codes it does not know)."""
    for kind in (Invalid, NotFound, Forbidden, TooLarge, Conflict, Cancelled):
        if kind.code == code:
            return kind
    return HeadstartError
