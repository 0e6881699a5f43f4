"""TensorFlow's start-up lines are kept off the CLI's stderr, and what else an import says is kept.

Every CLI run checks the real thing (`harness.headstart` fails on TensorFlow's lines); these check
the mechanism on a stand-in package that prints the same kind of lines from its import.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796123754.061285   20758 port.cc:153] oneDNN custom operations are on.",
)
REAL = "W0000 00:00:1796123754.061285   20758 gpu.cc:9] a real warning"


def noisy_package(folder: Path, *, fails: bool) -> Path:
    """A package whose import writes TensorFlow-like lines straight to descriptor 2."""
    package = folder / "noisy"
    package.mkdir()
    lines = "".join(f"{line}\\n" for line in (*NOISE, REAL))
    body = f'import os, sys\nos.write(2, b"{lines}")\nprint("from python", file=sys.stderr)\n'
    if fails:
        body += 'raise ImportError("the library did not load")\n'
    (package / "__init__.py").write_text(body)
    return folder


def run(folder: Path) -> subprocess.CompletedProcess[str]:
    script = """
        import sys
        from headstart.tensorflow_startup import quiet_first_import
        quiet_first_import("noisy")
        quiet_first_import("noisy")
        import noisy
        print(type(noisy.__loader__).__name__, type(noisy.__spec__.loader).__name__)
        print(sum(type(f).__name__ == "_QuietFinder" for f in sys.meta_path))
    """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )


def test_the_first_import_drops_only_the_noise_and_keeps_its_loader(tmp_path: Path) -> None:
    result = run(noisy_package(tmp_path, fails=False))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [REAL, "from python"]
    assert result.stdout.split() == ["SourceFileLoader", "SourceFileLoader", "0"]


def test_a_failed_import_shows_everything_it_wrote(tmp_path: Path) -> None:
    result = run(noisy_package(tmp_path, fails=True))
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert lines[:4] == [*NOISE, REAL, "from python"]
    assert lines[-1] == "ImportError: the library did not load"
