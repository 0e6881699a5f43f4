"""The HTTP side of the catalog client: one httpx.Client, request encoding, and error bodies turned
back into headstart's exception hierarchy."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from headstart.kernels.errors import HeadstartError, Invalid, error_class
from headstart.kernels.schemas import Page

# Uploads and downloads move this much at a time, so memory stays bounded by a chunk, not a file.
CHUNK_BYTES = 1024 * 1024

# The most that the API serves in one page (it refuses a larger `limit`); fewer pages make a full
# listing quicker.
LIST_PAGE = 500

# The `error` codes of docs/api.md; any other code (such as `internal`) stays a plain HeadstartError.
# Statuses that JupyterHub or the proxy answer before a request reaches the service, usually
# because the token is missing or lacks the service's scopes.
_SIGN_IN_STATUSES = frozenset({301, 302, 303, 307, 308, 401, 403})
_TOKEN_HINT = "check the token (JUPYTERHUB_API_TOKEN, or pass token=)"

Schema = TypeVar("Schema", bound=BaseModel)


class Connection:
    """An authenticated httpx.Client bound to the catalog's base URL, raising HeadstartErrors."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None,
        timeout: float,
        page_size: int = LIST_PAGE,
    ) -> None:
        if not 1 <= page_size <= LIST_PAGE:
            raise Invalid(f"page_size must be from 1 to {LIST_PAGE}, not {page_size}")
        # A trailing slash makes "headstart/models" land under the service prefix, not beside it.
        self.url = url.rstrip("/") + "/"
        self.timeout = timeout
        self.page_size = page_size
        headers = {"Authorization": f"token {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, transport=transport, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: Iterator[bytes] | None = None,
        files: list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        slow: bool = False,
    ) -> httpx.Response:
        """Send one request and return its successful answer; `slow` is for requests that the service
        carries out before it answers (building, scoring), which may take minutes."""
        with self.reaching():
            response = self.http.request(
                method,
                path,
                params=params,
                json=json,
                content=content,
                files=files,
                headers=headers,
                timeout=self._timeout(slow),
            )
        raise_for_status(response)
        return response

    def every(self, path: str, schema: type[Schema], params: Mapping[str, str]) -> list[Schema]:
        """Every item of a paginated list, fetched page by page."""
        items: list[Schema] = []
        while True:
            paging = {**params, "limit": str(self.page_size), "offset": str(len(items))}
            page, total = parse_page(self.request("GET", path, params=paging), schema)
            items.extend(page)
            # The count served, not the count asked, decides the next offset and the end.
            if not page or len(items) >= total:
                return items

    @contextmanager
    def stream(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """A successful answer whose body is read by the caller, chunk by chunk."""
        with self.reaching(), self.http.stream(method, path, params=params) as response:
            raise_for_status(response)
            yield response

    @contextmanager
    def reaching(self) -> Iterator[None]:
        """Turn httpx's network errors into a HeadstartError that names the catalog."""
        try:
            yield
        except httpx.TimeoutException as error:
            raise HeadstartError(
                f"the catalog at {self.url} did not answer within {self.timeout:g} s"
            ) from error
        except httpx.TransportError as error:
            raise HeadstartError(f"cannot reach the catalog at {self.url}: {error}") from error

    def _timeout(self, slow: bool) -> httpx.Timeout:
        # Connecting and writing keep the limit; only the wait for the answer is unbounded.
        return httpx.Timeout(self.timeout, read=None) if slow else httpx.Timeout(self.timeout)

    def close(self) -> None:
        self.http.close()


def raise_for_status(response: httpx.Response) -> None:
    """Raise the exception that a non-2xx answer stands for; do nothing on success."""
    if response.is_success:
        return
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = None
    request = response.request
    status = f"{request.method} {request.url} answered {response.status_code} {response.reason_phrase}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = error_class(body["error"])
        message = str(body.get("detail") or body["error"])
        if response.status_code in _SIGN_IN_STATUSES and message == response.reason_phrase:
            # jupyter-server refused the token before any catalog code ran, and said only the status.
            message = f"{status}; {_TOKEN_HINT}"
        raise error(message, detail=body.get("items"))
    # Not our service's answer: a proxy's error page, or the hub refusing the request.
    message = f"{status}; {_TOKEN_HINT}" if response.status_code in _SIGN_IN_STATUSES else status
    raise HeadstartError(message, detail=response.text[:1000] or None)


def query(**values: object) -> dict[str, str]:
    """Query parameters as docs/api.md spells them: None left out, lists comma-joined, bools lower."""
    params: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            params[key] = ",".join(str(item) for item in value)
        else:
            params[key] = str(value)
    return params


def parse(response: httpx.Response, schema: type[Schema]) -> Schema:
    """The answer's JSON as one schema instance."""
    try:
        return schema.model_validate(response.json())
    except ValueError as error:
        raise _unexpected(response, schema, error) from None


def parse_list(response: httpx.Response, schema: type[Schema], key: str | None = None) -> list[Schema]:
    """The answer's JSON (or its `key` member) as a list of schema instances."""
    try:
        items = response.json()
        if key is not None:
            items = items[key]
        return [schema.model_validate(item) for item in items]
    except (ValueError, TypeError, KeyError) as error:
        raise _unexpected(response, schema, error) from None


def parse_page(response: httpx.Response, schema: type[Schema]) -> tuple[list[Schema], int]:
    """A `Page` answer as its items and how many match in all."""
    page = parse(response, Page)
    try:
        return [schema.model_validate(item) for item in page.items], page.total
    except ValueError as error:
        raise _unexpected(response, schema, error) from None


def _unexpected(response: httpx.Response, schema: type[BaseModel], error: Exception) -> HeadstartError:
    # A mismatch means the service and this client disagree on the contract: say so plainly.
    request = response.request
    return HeadstartError(
        f"{request.method} {request.url} answered something that is not a {schema.__name__}: {error}"
    )


def file_chunks(path: Path, progress: Callable[[int, int], None] | None = None) -> Iterator[bytes]:
    """A file's bytes, one chunk at a time, reporting (bytes sent, total bytes) after each chunk."""
    total = path.stat().st_size
    done = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
            done += len(chunk)
            if progress is not None:
                progress(done, total)


def upload_headers(path: Path, content_type: str) -> dict[str, str]:
    """Headers for a streamed file: a known length lets the service refuse an oversized upload at once
    and spares proxies a chunked body."""
    return {"Content-Type": content_type, "Content-Length": str(path.stat().st_size)}
