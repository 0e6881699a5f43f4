"""PyTorch state-dict files written without torch, as PyTorch's serialization lays them out.

The object pickle is built from pickle opcodes (a `collections.OrderedDict` of
`torch._utils._rebuild_tensor_v2` calls on persistent-id storages); each storage is its raw
little-endian bytes, after the pickles (legacy format) or as `archive/data/<key>` (zip format).
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headstart.kernels.engine.torch_state import LEGACY_MAGIC, LEGACY_PROTOCOL

STORAGE_TYPES = {
    np.dtype("<f4"): "FloatStorage",
    np.dtype("<i8"): "LongStorage",
    np.dtype("<f2"): "HalfStorage",
}


@dataclass(frozen=True)
class Tensor:
    """A tensor as PyTorch pickles it: a view (offset, shape, stride in elements) of a storage."""

    storage: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


RNG = np.random.default_rng(7)
# A sample state dict: a conv kernel, a bias and a transposed view sharing one storage, a
# half-precision matrix and an int64 scalar (a BatchNorm's num_batches_tracked).
STORAGES = {
    "94001": RNG.normal(size=2 * 3 * 3 * 3 + 4).astype("<f4"),
    "94002": RNG.normal(size=6).astype("<f2"),
    "94003": np.array([12345], dtype="<i8"),
}
TENSORS = {
    "conv.weight": Tensor("94001", 0, (2, 3, 3, 3), (27, 9, 3, 1)),
    "conv.bias": Tensor("94001", 54, (4,), (1,)),
    "conv.weight_t": Tensor("94001", 0, (27, 2), (1, 27)),
    "half": Tensor("94002", 0, (3, 2), (2, 1)),
    "bn.num_batches_tracked": Tensor("94003", 0, (), ()),
}


def text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def integer(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def name_global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def tuple_of(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def object_pickle(
    tensors: dict[str, Tensor], storages: dict[str, np.ndarray], *, legacy: bool, extra: bytes = b""
) -> bytes:
    """The OrderedDict pickle of a state dict; `extra` is one more (key, value) pair's opcodes."""
    out = [
        pickle.PROTO + b"\x02",
        name_global("collections", "OrderedDict"),
        pickle.EMPTY_TUPLE,
        pickle.REDUCE,
    ]
    out.append(pickle.MARK)
    for name, tensor in tensors.items():
        data = storages[tensor.storage]
        pid = [
            text("storage"),
            name_global("torch", STORAGE_TYPES[data.dtype]),
            text(tensor.storage),
            text("cpu"),
            integer(data.size),
        ]
        if legacy:
            pid.append(pickle.NONE)  # the legacy format's view metadata
        out += [
            text(name),
            name_global("torch._utils", "_rebuild_tensor_v2"),
            pickle.MARK,
            tuple_of(*pid),
            pickle.BINPERSID,
            integer(tensor.offset),
            tuple_of(*map(integer, tensor.shape)),
            tuple_of(*map(integer, tensor.stride)),
            pickle.NEWFALSE,
            name_global("collections", "OrderedDict"),
            pickle.EMPTY_TUPLE,
            pickle.REDUCE,
            pickle.TUPLE,
            pickle.REDUCE,
        ]
    out += [extra, pickle.SETITEMS, pickle.STOP]
    return b"".join(out)


def evil_entry(module: str, name: str, *args: str) -> bytes:
    """One more state-dict entry whose value is `module.name(*args)`: a call the pickle asks for."""
    return text("evil") + name_global(module, name) + tuple_of(*map(text, args)) + pickle.REDUCE


def write_legacy(
    path: Path, tensors: dict[str, Tensor], storages: dict[str, np.ndarray], extra: bytes = b""
) -> Path:
    info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True, "type_sizes": {"int": 4, "long": 8}}
    parts = [pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(LEGACY_PROTOCOL, 2), pickle.dumps(info, 2)]
    parts.append(object_pickle(tensors, storages, legacy=True, extra=extra))
    keys = sorted(storages)
    parts.append(pickle.dumps(keys, 2))
    for key in keys:
        parts += [struct.pack("<q", storages[key].size), storages[key].tobytes()]
    path.write_bytes(b"".join(parts))
    return path


def write_zip(
    path: Path, tensors: dict[str, Tensor], storages: dict[str, np.ndarray], extra: bytes = b""
) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", object_pickle(tensors, storages, legacy=False, extra=extra))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data.tobytes())
    return path


def write_arrays(path: Path, arrays: dict[str, np.ndarray], layout: str) -> Path:
    """A state dict of these arrays, each in a storage of its own, in the "legacy" or "zip" layout."""
    copies = {name: np.array(a, order="C") for name, a in arrays.items()}
    storages = {str(1000 + i): a.reshape(-1) for i, a in enumerate(copies.values())}
    tensors = {
        name: Tensor(str(1000 + i), 0, a.shape, tuple(s // a.itemsize for s in a.strides))
        for i, (name, a) in enumerate(copies.items())
    }
    return (write_legacy if layout == "legacy" else write_zip)(path, tensors, storages)
