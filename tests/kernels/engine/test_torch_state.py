"""The state-dict reader: both PyTorch formats round-trip, and a pickle naming any other global is refused.

The files are written by tests/kernels/engine/torch_files.py, without torch.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from headstart.kernels.engine.torch_state import Refused, read_state_dict
from headstart.kernels.errors import Invalid
from tests.kernels.engine.torch_files import (
    STORAGES,
    TENSORS,
    Tensor,
    evil_entry,
    object_pickle,
    write_legacy,
    write_zip,
)

WRITERS = {"legacy": write_legacy, "zip": write_zip}
EXPECTED = {
    "conv.weight": STORAGES["94001"][:54].reshape(2, 3, 3, 3),
    "conv.bias": STORAGES["94001"][54:58],
    "conv.weight_t": STORAGES["94001"][:54].reshape(2, 27).T,
    "half": STORAGES["94002"].reshape(3, 2),
    "bn.num_batches_tracked": np.array(12345, dtype="<i8"),
}


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_shapes_and_values_round_trip(layout: str, tmp_path: Path) -> None:
    path = WRITERS[layout](tmp_path / "state.pth", TENSORS, STORAGES)
    state = read_state_dict(path)
    assert list(state) == list(TENSORS)  # the file's order
    for name, expected in EXPECTED.items():
        assert state[name].shape == expected.shape and state[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(state[name], expected)
    assert state["conv.weight_t"].flags["C_CONTIGUOUS"] and state["conv.weight"].flags["WRITEABLE"]


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_a_pickle_naming_another_global_is_refused_before_anything_runs(layout: str, tmp_path: Path) -> None:
    created = tmp_path / "created-by-the-pickle"
    extra = evil_entry("builtins", "open", str(created), "w")
    # The payload is live: a plain unpickler runs it and the file appears.
    pickle.loads(object_pickle({}, {}, legacy=False, extra=extra))
    assert created.exists()
    created.unlink()

    path = WRITERS[layout](tmp_path / "evil.pth", TENSORS, STORAGES, extra=extra)
    with pytest.raises(Refused) as caught:
        read_state_dict(path)
    assert str(caught.value) == (
        f"{path}: its pickle names builtins.open, which no tensor state dict needs; "
        "refused before anything in it ran"
    )
    assert isinstance(caught.value, Invalid) and not created.exists()


@pytest.mark.parametrize(("module", "name"), [("os", "system"), ("builtins", "eval"), ("torch", "load")])
def test_every_global_outside_the_allowed_set_is_refused(module: str, name: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write_legacy(
        tmp_path / "evil.pth", TENSORS, STORAGES, extra=evil_entry(module, name, f"touch {marker}")
    )
    with pytest.raises(Refused, match=f"names {module}.{name}, which no tensor state dict needs"):
        read_state_dict(path)
    assert not marker.exists()


def test_a_truncated_file_is_named(tmp_path: Path) -> None:
    whole = write_legacy(tmp_path / "whole.pth", TENSORS, STORAGES).read_bytes()
    for cut in (len(whole) - 3, len(whole) // 2, 40):
        path = tmp_path / f"cut-{cut}.pth"
        path.write_bytes(whole[:cut])
        with pytest.raises(Invalid, match=f"^{path} is truncated or not a PyTorch state dict"):
            read_state_dict(path)
    zipped = write_zip(tmp_path / "whole.zip.pth", TENSORS, STORAGES).read_bytes()
    path = tmp_path / "cut.zip.pth"
    path.write_bytes(zipped[: len(zipped) - 30])
    with pytest.raises(Invalid, match=f"^{path} is truncated or not a PyTorch state dict"):
        read_state_dict(path)


def test_a_file_that_is_no_state_dict_is_named(tmp_path: Path) -> None:
    renamed = tmp_path / "photo.pth"
    renamed.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    other = tmp_path / "list.pth"
    other.write_bytes(pickle.dumps([1, 2, 3], 2))
    zipped = tmp_path / "zip.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", "no pickle here")
    for path, message in [
        (renamed, "is truncated or not a PyTorch state dict"),
        (other, "is not a PyTorch state dict (no PyTorch magic number at its start)"),
        (zipped, "is a zip but not a PyTorch state dict"),
        (tmp_path / "absent.pth", "no such weights file"),
    ]:
        with pytest.raises(Invalid, match="^" + "|".join((str(path), "no such weights file"))) as caught:
            read_state_dict(path)
        assert message in str(caught.value) and str(path) in str(caught.value)
        assert len(str(caught.value).splitlines()) == 1


def test_a_tensor_past_its_storage_is_refused(tmp_path: Path) -> None:
    tensors = {"too.long": Tensor("94001", 50, (10,), (1,))}
    path = write_zip(tmp_path / "long.pth", tensors, {"94001": STORAGES["94001"]})
    with pytest.raises(Invalid, match="reaches past the end of storage 94001"):
        read_state_dict(path)
