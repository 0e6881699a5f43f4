"""What every catalog handler shares: the caller's identity, JSON in and out, and the one error table.

Handlers stay thin: they parse HTTP, call a manager off the tornado loop with `call`, and write the
pydantic answer with `write_json`. Every error, the catalog's own and tornado's, leaves as
`{"error": code, "detail": message}` through `write_error`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web
from tornado.httputil import responses
from tornado.iostream import IOStream

from headstart.extension.handlers.lingering import close_lingering
from headstart.kernels.errors import (
    Cancelled,
    Conflict,
    Forbidden,
    HeadstartError,
    Invalid,
    NotFound,
    TooLarge,
)

if TYPE_CHECKING:
    from headstart.extension.app import CatalogApp
    from headstart.extension.catalog.tables import User
    from headstart.extension.manager import Catalog
    from headstart.extension.managers.model_index import Snapshot

Body = TypeVar("Body", bound=BaseModel)
Result = TypeVar("Result")

# The one table from the exception hierarchy to HTTP (docs/api.md). Order matters: the first
# matching class wins, so subclasses (WeightsUnavailable is an Invalid) need no rows of their own.
ERRORS: list[tuple[type[HeadstartError], int, str]] = [
    (Invalid, 400, "invalid"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Cancelled, 409, "conflict"),
    (TooLarge, 413, "too_large"),
]

# Codes for tornado's own errors (unknown routes, unsupported methods, refused sign-ins).
HTTP_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "not_allowed"}

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
# The database's integers are signed 64-bit. A larger id names nothing, and a larger number would
# overflow the database driver (a 500) instead of missing, so the handlers stop it first.
LARGEST_INTEGER = 2**63 - 1


def error_reply(error: BaseException | None, status: int) -> tuple[int, dict[str, Any]]:
    """The status and JSON body that answer `error`; unexpected errors say nothing of themselves."""
    for kind, code, name in ERRORS:
        if isinstance(error, kind):
            reply: dict[str, Any] = {"error": name, "detail": error.message}
            if isinstance(error.detail, list):
                reply["items"] = error.detail
            return code, reply
    if isinstance(error, web.HTTPError):
        status = error.status_code
    if status < 500:
        detail = responses.get(status, "error")
        if isinstance(error, web.HTTPError) and error.log_message:
            detail = error.log_message % error.args if error.args else error.log_message
        return status, {"error": HTTP_CODES.get(status, "invalid"), "detail": detail}
    return 500, {"error": "internal", "detail": "internal error"}


def invalid_body(error: ValidationError, schema: type[BaseModel]) -> Invalid:
    """A pydantic failure as the catalog's Invalid, with one item per wrong field."""
    items = [
        {"field": ".".join(str(part) for part in e["loc"]) or "(body)", "message": e["msg"]}
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in items)
    return Invalid(f"the body is not a valid {schema.__name__}: {summary}", detail=items)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (`gzip`, `gzip;q=0.8`; not `gzip;q=0`)."""
    for coding in accept_encoding.lower().split(","):
        name, _, weight = coding.partition(";")
        if name.strip() == "gzip":
            return weight.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class CatalogHandler(APIHandler):
    """Base of the catalog's handlers: the app, its catalog, the caller, JSON and errors."""

    @property
    def catalog_app(self) -> CatalogApp:
        return self.settings["headstart"]

    @property
    def catalog(self) -> Catalog:
        return self.catalog_app.catalog

    async def call(self, function: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        """Run a manager call on a worker thread: database and file work never blocks the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(function, *args, **kwargs))

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        # Every numeric path part is an id (datasets named by digits are looked up by id too).
        if any(part.isdigit() and int(part) > LARGEST_INTEGER for part in self.path_args):
            raise NotFound(f"nothing is stored at {self.request.path}")

    async def viewer(self) -> User:
        """The catalog user making this request, created on first sight."""
        name = self.catalog_app.user_name(self.current_user)
        known = self.catalog.known_user(name)
        return known if known is not None else await self.call(self.catalog.user, name)

    async def models_snapshot(self) -> Snapshot:
        """The models' snapshot; the database is asked, off the loop, only when it may have moved.

        A hop to a worker thread costs more than a page served from the snapshot, and under load
        the threads' turns at the GIL made the slowest requests several times slower than the rest.
        """
        index = self.catalog.models.index
        snapshot = index.peek()
        return snapshot if snapshot is not None else await self.call(index.current)

    def write_job(self, job: BaseModel, job_id: int) -> None:
        """Answer 202 with a job (or a resource holding one) that goes on after the answer;
        `Location` is the job, for the caller to follow."""
        self.set_header("Location", f"{self.base_url}headstart/jobs/{job_id}")
        self.write_json(job, 202)

    def wants_gzip(self) -> bool:
        """Whether the caller takes a gzip body (httpx and browsers do)."""
        return accepts_gzip(self.request.headers.get("Accept-Encoding", ""))

    def finish_json(
        self, body: bytes, status: int = 200, etag: str | None = None, encoding: str | None = None
    ) -> None:
        """Finish with JSON that is already serialized.

        `etag` is the body's, made once with it: tornado would otherwise hash every body it sends
        (a leaderboard's 1.3 MB for every request). A matching If-None-Match still answers 304.
        `encoding` ("gzip" or "identity") says that the resource is sent in either, as the caller's
        Accept-Encoding asks (`wants_gzip`), and which one `body` is in; each has its own ETag.
        """
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        if encoding is not None:
            self.set_header("Vary", "Accept-Encoding")
            if encoding == "gzip":
                self.set_header("Content-Encoding", "gzip")
        if etag is not None:
            self.set_header("Etag", etag)
            if status == 200 and self.check_etag_header():
                self.set_status(304)
                self.finish()
                return
        self.finish(body)

    # --- reading the request ----------------------------------------------------------------

    def read_json(self, schema: type[Body]) -> Body:
        """The request body parsed as `schema`; bad JSON and a failed schema are both Invalid."""
        try:
            data = json.loads(self.request.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise Invalid(f"the body is not valid JSON: {error}") from None
        if _has_oversized_integer(data):
            raise Invalid(f"integers in the body must be at most {LARGEST_INTEGER}")
        try:
            return schema.model_validate(data)
        except ValidationError as error:
            raise invalid_body(error, schema) from None

    def query_text(self, name: str) -> str | None:
        value = self.get_query_argument(name, None)
        return value if value not in (None, "") else None

    def query_int(
        self, name: str, default: int | None = None, *, low: int = 0, high: int | None = None
    ) -> int | None:
        """An integer query argument within [low, high], or Invalid."""
        text = self.query_text(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise Invalid(f"{name} must be an integer, not {text!r}") from None
        if value < low or value > (LARGEST_INTEGER if high is None else high):
            bounds = f"from {low} to {LARGEST_INTEGER if high is None else high}"
            raise Invalid(f"{name} must be {bounds}, not {value}")
        return value

    def query_bool(self, name: str) -> bool | None:
        text = self.query_text(name)
        if text is None:
            return None
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise Invalid(f"{name} must be true or false, not {text!r}")

    def query_list(self, name: str) -> list[str] | None:
        """A comma-separated query argument, such as `labels=cat,dog`."""
        text = self.query_text(name)
        return None if text is None else [part.strip() for part in text.split(",") if part.strip()]

    def page_arguments(self) -> tuple[int, int]:
        """`limit` (1 to 500, default 50) and `offset` (0 or more) of a list request."""
        limit = self.query_int("limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        offset = self.query_int("offset", 0, low=0)
        return limit, offset  # type: ignore[return-value]

    # --- writing the answer -----------------------------------------------------------------

    def write_json(self, value: Any, status: int = 200) -> None:
        """Finish with `value` as JSON: a pydantic model, a list of them, or plain data."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(_plain(value)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error answers the contract's JSON body; a traceback only ever goes to the log."""
        exc_info = kwargs.get("exc_info")
        status, reply = error_reply(exc_info[1] if exc_info else None, status_code)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(reply, default=str))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # The catalog's own errors are answers, not faults: one line, no traceback.
        if isinstance(value, HeadstartError):
            self.log.info("%s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)


def _has_oversized_integer(value: Any) -> bool:
    """Whether parsed JSON holds an integer beyond the database's 64 bits, at any depth."""
    if isinstance(value, int):
        return abs(value) > LARGEST_INTEGER
    if isinstance(value, list):
        return any(_has_oversized_integer(item) for item in value)
    if isinstance(value, dict):
        return any(_has_oversized_integer(item) for item in value.values())
    return False


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class NotFoundHandler(CatalogHandler):
    """Unknown paths under the catalog's resources answer a JSON 404, not the server's HTML page."""

    async def prepare(self) -> None:  # type: ignore[override]
        # Signed-in callers only: route names are not for anonymous eyes. There is no resource
        # to authorize, so the check is authentication alone.
        await super().prepare()
        if not self.current_user:
            raise web.HTTPError(403)
        raise web.HTTPError(404, "no such route: %s %s", self.request.method, self.request.path)


class UploadHandler(CatalogHandler):
    """Base of handlers whose request body streams to a temporary file under the store's `tmp/`.

    The body is never held in memory: `data_received` appends each chunk to the file and answers
    413 as soon as the count passes `body_limit()`. The file is deleted whatever happens. A refusal
    before the body is in hangs up with a lingering close (lingering.py), so that a proxy in front
    passes the answer on instead of its own 503. Subclasses are decorated with
    `@tornado.web.stream_request_body`.
    """

    suffix = ""
    upload_path: Path | None = None
    _upload: IO[bytes] | None = None
    received = 0

    def body_limit(self) -> int:
        raise NotImplementedError

    def check_arguments(self) -> None:
        """Refuse bad query arguments before any byte of the body is read."""

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        # `post` runs only once the body is in, so sign-in and authorization are checked here,
        # before the first byte is accepted.
        authorizing = self._authorize_upload()
        if authorizing is not None:
            await authorizing
        self.check_arguments()
        limit = self.body_limit()
        declared = self.request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"the upload is {declared} bytes, over the limit of {limit} bytes")
        # Tornado's own cap must sit above ours, so that our count, not a bare 400, stops a stream.
        self.request.connection.set_max_body_size(2 * limit + 2**20)  # type: ignore[union-attr]
        self.upload_path, self._upload = await self.call(self._open_upload)

    @web.authenticated
    @authorized
    async def _authorize_upload(self) -> None:
        pass

    def _open_upload(self) -> tuple[Path, IO[bytes]]:
        folder = self.catalog.store.tmp
        # The file stays open across many `data_received` calls; `discard_upload` closes and removes it.
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=folder, prefix="upload-", suffix=self.suffix, delete=False
        )
        return Path(handle.name), handle

    async def data_received(self, chunk: bytes) -> None:
        if self._finished or self._upload is None:
            return
        self.received += len(chunk)
        limit = self.body_limit()
        if self.received > limit:
            self.discard_upload()
            error = TooLarge(f"the upload passed the limit of {limit} bytes")
            # Finishing while the body is still coming makes tornado drop the rest; `finish` hangs up.
            self.send_error(413, exc_info=(TooLarge, error, None))
            return
        await self.call(self._upload.write, chunk)

    async def uploaded(self) -> Path:
        """The complete upload's file, closed and ready for a manager."""
        if self._upload is None or self.upload_path is None:
            raise Invalid("the upload was not received")
        await self.call(self._upload.close)
        return self.upload_path

    def hand_over_upload(self) -> None:
        """The upload's file now belongs to the job that reads it (which removes it at its end)."""
        self.upload_path = None

    def discard_upload(self) -> None:
        if self._upload is not None:
            self._upload.close()
            self._upload = None
        if self.upload_path is not None:
            self.upload_path.unlink(missing_ok=True)
            self.upload_path = None

    def finish(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        # An answer before the whole body is in (any refusal in `prepare` or `data_received`) makes
        # tornado hang up with the body still arriving: lingering.py says why that loses the answer
        # behind a proxy, and closes the connection so that it does not. Reading the rest instead
        # would keep the connection, but costs the service the whole of a refused 2 GiB upload.
        if not self._finished and self._body_pending():
            self.set_header("Connection", "close")
            stream = getattr(self.request.connection, "stream", None)
            if isinstance(stream, IOStream):
                close_lingering(stream)
        return super().finish(*args, **kwargs)

    def _body_pending(self) -> bool:
        """Whether the request has a body and not all of it has been received yet."""
        headers = self.request.headers
        if "Transfer-Encoding" not in headers and headers.get("Content-Length", "0") == "0":
            return False  # a GET, or an empty POST: nothing is left to arrive
        # Tornado resolves the request's body future once the last byte has been received.
        body = getattr(self.request, "_body_future", None)
        return body is not None and not body.done()

    def on_finish(self) -> None:
        self.discard_upload()

    def on_connection_close(self) -> None:
        self.discard_upload()
        super().on_connection_close()
