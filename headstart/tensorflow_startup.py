"""TensorFlow's start-up lines, kept off the CLI's stderr while its real errors still show.

`import tensorflow` (which `import keras` does) prints lines from C++ before absl's logging is set up
("WARNING: All log messages before absl::InitializeLog() is called...", oneDNN's "I0000 ... port.cc"
notice). TF_CPP_MIN_LOG_LEVEL cannot stop them, and Python's sys.stderr never sees them: they are
written straight to file descriptor 2. So for the first import only, descriptor 2 goes to a temporary
file. If the import fails, everything it wrote is replayed; if it succeeds, all but that noise is.
TF_ENABLE_ONEDNN_OPTS=0 would silence the oneDNN line too, but it changes numerics and speed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

PACKAGE = "tensorflow"

# absl's notice that it is not set up yet, and its INFO lines ("I0000 00:00:1796123754.061285  20758
# port.cc:153] oneDNN custom operations are on..."); warnings and errors (W, E, F) are kept.
NOISE = (
    re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(rb"^I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "),
)


def quiet_first_import(package: str = PACKAGE) -> None:
    """Silence the start-up lines of `package` (TensorFlow) when this process first imports it.

    Idempotent; once the package is imported, nothing is left in the import system.
    """
    if package in sys.modules or any(
        isinstance(f, _QuietFinder) and f.package == package for f in sys.meta_path
    ):
        return
    sys.meta_path.insert(0, _QuietFinder(package))


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds the package as the other finders would, with a loader that runs it quietly; once."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.package:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The package keeps its own loader: importlib.resources and friends ask it for files.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with stderr_filtered(NOISE):
            self.loader.exec_module(module)


@contextmanager
def stderr_filtered(noise: Sequence[re.Pattern[bytes]]) -> Iterator[None]:
    """Send descriptor 2 to a file for the block, then replay it: all of it if the block raised."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not any(p.match(line) for p in noise)]
            _write_all(2, b"".join(kept))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
