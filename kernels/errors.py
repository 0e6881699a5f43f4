"""The one exception hierarchy of headstart. HTTP status codes are mapped from it in one place."""

from __future__ import annotations


class HeadstartError(Exception):
    """Base of every error that headstart raises on purpose; the message is for the user."""

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class Invalid(HeadstartError):
    """The request or the uploaded file is malformed or breaks a rule."""


class NotFound(HeadstartError):
    """The thing does not exist, or the caller may not know that it does (private models)."""


class Forbidden(HeadstartError):
    """The caller can see the thing but may not change it."""


class TooLarge(HeadstartError):
    """A size limit set by the operator was exceeded; the message names the limit and the size."""


class Conflict(HeadstartError):
    """The request clashes with the catalog's state, such as deleting a dataset."""


class WeightsUnavailable(Invalid):
    """Pretrained weights could not be loaded from Keras' cache or the network."""


class Cancelled(HeadstartError):
    """A job stopped because its owner asked it to."""
