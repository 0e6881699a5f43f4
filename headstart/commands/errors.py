"""How the CLI reports an error: one line on stderr, as text or (with --json) as a JSON object.

Text: `error: <message>`. JSON: `{"error": code, "detail": message, "items": [...]}`, the catalog
service's own error body (docs/api.md), with every offending item that the text line only counts.
Either way the exit status is 2 for bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import click

EXIT_BAD_INPUT = 2
# A refused dataset can list thousands of files: the text line names this many, --json all of them.
SHOWN_ITEMS = 5
SHOWN_REASON_CHARS = 120

# The engine and the service speak Python's words; a CLI user types options instead.
CLI_SPELLINGS = {"weights=None": "--weights none"}


def run_reporting_errors(action: Callable[[], None], as_json: Callable[[], bool]) -> None:
    """Run a command's body; headstart's errors and bad values end it with one line and status 2."""
    from pydantic import ValidationError

    from headstart.kernels.errors import HeadstartError

    try:
        action()
    except HeadstartError as error:
        report(error_code(error), error.message, error.detail, as_json=as_json())
        raise SystemExit(EXIT_BAD_INPUT) from None
    except ValidationError as error:
        items = [
            {"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        message = "; ".join(f"{item['field']}: {item['message']}" for item in items)
        report("invalid", message, items, as_json=as_json())
        raise SystemExit(EXIT_BAD_INPUT) from None


def error_code(error: BaseException) -> str:
    """The service's code for an error: its kind below HeadstartError, in snake case (not_found)."""
    from headstart.kernels.errors import HeadstartError

    kind = next(
        (c for c in type(error).__mro__ if HeadstartError in c.__bases__), type(error)
    )  # WeightsUnavailable is an Invalid: "invalid"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()


def report(code: str, message: str, detail: Any = None, *, as_json: bool) -> None:
    """Write one error line on stderr."""
    message = _cli_words(message)
    if as_json:
        body: dict[str, Any] = {"error": code, "detail": message}
        if isinstance(detail, list):
            body["items"] = detail
        click.echo(json.dumps(body, default=str), err=True)
    else:
        click.echo(f"error: {_one_line(message, detail)}", err=True)


def _cli_words(message: str) -> str:
    for python, option in CLI_SPELLINGS.items():
        message = message.replace(python, option)
    return message


def _one_line(message: str, detail: Any) -> str:
    """The message with, for a list of refused files, each file and its reason (bounded)."""
    if isinstance(detail, list) and detail and all(isinstance(i, dict) and "file" in i for i in detail):
        shown = "; ".join(
            f"{item['file']} ({_clip(str(item.get('reason', 'refused')))})" for item in detail[:SHOWN_ITEMS]
        )
        more = len(detail) - SHOWN_ITEMS
        if more > 0:
            shown += f"; and {more} more (--json lists them all)"
        # The message names one example ("..., such as 'a.png' (reason)"); the list names them all.
        message = f"{message.split(', such as ')[0]}: {shown}"
    return " ".join(message.split())


def _clip(text: str) -> str:
    return text if len(text) <= SHOWN_REASON_CHARS else text[: SHOWN_REASON_CHARS - 3] + "..."
