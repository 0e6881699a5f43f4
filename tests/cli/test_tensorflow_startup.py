"""TensorFlow's start-up lines are kept off the CLI's stderr, and what else the import says is kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_the_filter_drops_the_noise_and_replays_everything_when_the_block_fails() -> None:
    script = """
        import os, sys
        from headstart.tensorflow_startup import NOISE, stderr_filtered

        lines = (
            b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
            b"I0000 00:00:1796123754.061285   20758 port.cc:153] oneDNN custom operations are on.\\n"
            b"W0000 00:00:1796123754.061285   20758 gpu.cc:9] a real warning\\n"
        )
        with stderr_filtered(NOISE):
            os.write(2, lines)
            print("from python", file=sys.stderr)
        try:
            with stderr_filtered(NOISE):
                os.write(2, lines)
                raise RuntimeError("the import failed")
        except RuntimeError:
            print("raised", file=sys.stderr)
    """
    lines = python(script).stderr.splitlines()
    assert lines[:2] == ["W0000 00:00:1796123754.061285   20758 gpu.cc:9] a real warning", "from python"]
    assert len(lines) == 6 and lines[2].startswith("WARNING: All log messages") and lines[-1] == "raised"


def test_importing_keras_after_the_hook_is_quiet_and_tensorflow_keeps_its_loader() -> None:
    result = python(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        from headstart.tensorflow_startup import quiet_first_import
        quiet_first_import()
        quiet_first_import()
        import keras, sys, tensorflow
        print(type(tensorflow.__loader__).__name__, type(tensorflow.__spec__.loader).__name__)
        print(keras.ops.sum(keras.ops.ones(3)).numpy())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.split() == ["SourceFileLoader", "SourceFileLoader", "3.0"]
