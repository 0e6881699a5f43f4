"""What every widget shares: its client, a message line, and polling on the kernel's event loop."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import HeadstartError


def resolve_client(client: HeadstartClient | None) -> HeadstartClient:
    """The given client, or one from HEADSTART_URL and JUPYTERHUB_API_TOKEN (a hub kernel's)."""
    return client if client is not None else HeadstartClient()


# Secondary text in the lab's own colour, which the dark theme turns light.
MUTED = "color:var(--jp-ui-font-color2)"


class Status(w.HTML):
    """One line saying what happened: quiet when all is well, red with the reason when not."""

    def ok(self, text: str) -> None:
        self.value = f"<span class='headstart-ok'>{text}</span>"

    def error(self, error: BaseException | str) -> None:
        if isinstance(error, str):
            message = error  # the caller's own words, escaped by the caller where they quote names
        else:
            # An exception's message can quote names users chose: it is shown as text, not HTML.
            known = isinstance(error, HeadstartError)
            message = html.escape(str(error) if known else f"{type(error).__name__}: {error}")
        self.value = (
            f"<span class='headstart-error' style='color:var(--jp-error-color1, #b00020)'>{message}</span>"
        )


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 dataset`, `3 datasets`, `2 bodies`."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def quantity(done: int, total: int, unit: str) -> str:
    """`3.1 of 12.0 MB` for bytes, `40 of 600 images` for counts."""
    if unit == "bytes":
        return f"{done / 1e6:.1f} of {total / 1e6:.1f} MB"
    return f"{done} of {total} {unit}"


class JobBar(w.HBox):
    """A long action's progress bar and its phase in words; out of sight until the action starts.

    The client's callbacks feed it (`step`), so it follows an upload byte by byte and then the job
    the service runs with it, phase by phase.
    """

    def __init__(self) -> None:
        self.bar = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="240px"))
        self.phase = w.HTML()
        super().__init__([self.bar, self.phase], layout=w.Layout(display="none", align_items="center"))

    def begin(self, phase: str) -> None:
        self.layout.display = "flex"
        with self.bar.hold_sync():
            self.bar.max, self.bar.value, self.bar.bar_style = 1, 0, "info"
        self.phase.value = html.escape(phase)

    def step(self, phase: str | None, done: int, total: int, unit: str = "") -> None:
        """Show `done` of `total` in the named phase; a total of 0 means not known yet."""
        self.layout.display = "flex"
        with self.bar.hold_sync():
            self.bar.max = max(total, 1)
            self.bar.value = min(done, self.bar.max)
        words = phase or "working"
        if total:
            words = f"{words}: {quantity(done, total, unit)}" if unit else f"{words} {done}/{total}"
        self.phase.value = html.escape(words)

    def end(self, text: str, *, ok: bool = True) -> None:
        with self.bar.hold_sync():
            self.bar.value = self.bar.max if ok else self.bar.value
            self.bar.bar_style = "success" if ok else "danger"
        self.phase.value = html.escape(text)


def start_polling(step: Callable[[], Awaitable[bool]], interval: float) -> asyncio.Task[Any] | None:
    """Call `step()` every `interval` seconds on the running event loop until it answers False.

    In a kernel this is the kernel's own loop, so widget updates happen where ipykernel routes
    their messages (ipykernel 7 no longer sends output from other threads to the cell). Without a
    running loop (plain Python, tests) nothing is scheduled and the caller polls by hand.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None

    async def run() -> None:
        while await step():
            await asyncio.sleep(interval)

    return loop.create_task(run())


def replace_options(select: w.Select | w.Dropdown, options: list[tuple[str, Any]]) -> None:
    """Give a selection widget new options and keep its choice when it is still offered.

    ipywidgets moves the choice to the first option whenever the options change; for a picker that
    would silently choose something the user never picked, so a vanished choice becomes no choice.
    """
    keep = select.value
    with select.hold_trait_notifications():
        select.options = options
        if any(value == keep for _, value in options):
            select.value = keep
        else:
            # An explicit "any" option (value None) stands for no choice where there is one.
            select.index = next((i for i, (_, value) in enumerate(options) if value is None), None)


MAX_EPOCH_TICKS = 10


def epoch_ticks(epochs: Iterable[int]) -> list[float]:
    """Axis ticks at whole epochs, at most MAX_EPOCH_TICKS of them, for bqplot's `tick_values`.

    Left to itself bqplot ticks a few epochs at fractions, which `tick_format="d"` prints as
    repeated whole numbers (1 1 1 2 2 2).
    """
    numbers = sorted(set(epochs))
    step = max(1, -(-len(numbers) // MAX_EPOCH_TICKS))
    return [float(n) for n in numbers[::step]]
