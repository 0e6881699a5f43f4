"""Read a PyTorch tensor state dict into numpy arrays, without torch and without running its pickle.

A `.pth` file is a pickle, and a pickle is a program: it may name any importable function and call
it. So the unpickler here admits only the globals that a tensor state dict needs and swaps each for a
stand-in of its own (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the typed
storages). Any other global is refused when the pickle names it, before anything is called.

Both of PyTorch's formats are read: the legacy one (before 1.6: pickles one after another, then the
storages' raw bytes) and the zip one (`<root>/data.pkl` and each storage as `<root>/data/<key>`).
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from headstart.kernels.errors import Invalid

# torch.serialization: the first pickle of a legacy file, and the protocol version after it.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# The typed storages of torch's pickles, by the numpy dtype of their elements (little-endian).
STORAGE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(dtype)
    for name, dtype in {
        "DoubleStorage": "<f8",
        "FloatStorage": "<f4",
        "HalfStorage": "<f2",
        "LongStorage": "<i8",
        "IntStorage": "<i4",
        "ShortStorage": "<i2",
        "CharStorage": "i1",
        "ByteStorage": "u1",
        "BoolStorage": "?",
    }.items()
}


class Refused(Invalid):
    """The pickle names a global outside a tensor state dict's: it is never run."""


class _StorageType:
    """Stands in for `torch.FloatStorage` and its kin: only its element type matters here."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """One storage that the pickle refers to; its bytes come later in a legacy file."""

    __slots__ = ("data", "dtype", "key", "numel")

    def __init__(self, key: str, dtype: np.dtype, numel: int) -> None:
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None

    def fill(self, raw: bytes) -> None:
        if len(raw) != self.numel * self.dtype.itemsize:
            raise ValueError(f"storage {self.key} holds {len(raw)} bytes, not {self.numel} elements")
        self.data = np.frombuffer(raw, dtype=self.dtype)


@dataclass(frozen=True)
class _TensorRef:
    """What `_rebuild_tensor_v2` was asked to build: a strided view of a storage."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError(f"storage {self.storage.key} has no data")
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, dtype=data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= data.size:
            raise ValueError(f"a tensor reaches past the end of storage {self.storage.key}")
        strides = tuple(s * data.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], shape=self.size, strides=strides)
        return np.array(view, order="C")  # a copy: contiguous, writable, free of the file's buffer


def _int_tuple(value: object) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(n) is int for n in value):
        raise ValueError(f"a tensor's size and stride must be tuples of ints, not {value!r}")
    return value


def _rebuild_tensor(
    storage: object, offset: object, size: object, stride: object, *rest: object
) -> _TensorRef:
    # The rest is requires_grad, backward hooks and (newer torch) metadata: nothing a weight needs.
    if not isinstance(storage, _Storage) or type(offset) is not int:
        raise ValueError("_rebuild_tensor_v2 was not given a storage and an offset")
    size, stride = _int_tuple(size), _int_tuple(stride)
    if len(size) != len(stride):
        raise ValueError("a tensor's size and stride differ in length")
    return _TensorRef(storage, offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Admits the globals of a tensor state dict and nothing else; storages come by persistent id."""

    def __init__(self, file: IO[bytes], path: Path, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.path = path
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise Refused(
            f"{self.path}: its pickle names {module}.{name}, which no tensor state dict needs; "
            "refused before anything in it ran"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage type, key, location, element count[, view]): view is None in a
        # legacy file unless one storage is a slice of another, which state dicts never hold.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, _, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or type(numel) is not int:
            raise ValueError(f"unexpected persistent id {pid!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise ValueError("storage views are not supported")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type.dtype, numel)
        return storage


# What a damaged or foreign file raises inside the reader; each becomes one Invalid naming the file.
_MALFORMED = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    MemoryError,
    zipfile.BadZipFile,
    OSError,
)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state dict file by name, in the file's order, as numpy arrays.

    Raises Invalid naming the file when it is truncated, not a state dict, or names a global that a
    tensor state dict does not need.
    """
    path = Path(path)
    if not path.is_file():
        raise Invalid(f"no such weights file: {path}")
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except Invalid:
        raise
    except _MALFORMED as error:
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise Invalid(f"{path} is truncated or not a PyTorch state dict ({reason})") from error


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    storages: dict[str, _Storage] = {}
    with path.open("rb") as file:

        def load() -> Any:
            return _StateDictUnpickler(file, path, storages).load()

        if load() != LEGACY_MAGIC:
            raise Invalid(f"{path} is not a PyTorch state dict (no PyTorch magic number at its start)")
        if load() != LEGACY_PROTOCOL:
            raise Invalid(f"{path} is a PyTorch file of a protocol other than {LEGACY_PROTOCOL}")
        info = load()
        if not isinstance(info, dict) or info.get("little_endian") is not True:
            raise Invalid(f"{path} was written on a big-endian machine, which is not supported")
        state = load()
        keys = load()
        if not isinstance(keys, list) or sorted(keys) != sorted(storages):
            raise ValueError("the list of storages does not match the tensors")
        for key in keys:
            storage = storages[key]
            count = int.from_bytes(_read_exactly(file, 8), "little")
            if count != storage.numel:
                raise ValueError(f"storage {key} has {count} elements, not {storage.numel}")
            storage.fill(_read_exactly(file, count * storage.dtype.itemsize))
        if file.read(1):
            raise ValueError("bytes follow the last storage")
    return _tensors(path, state)


def _read_exactly(file: IO[bytes], count: int) -> bytes:
    data = file.read(count)
    if len(data) != count:
        raise EOFError(f"the file ends {count - len(data)} bytes early")
    return data


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    storages: dict[str, _Storage] = {}
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise Invalid(f"{path} is a zip but not a PyTorch state dict (no <root>/data.pkl in it)")
        root = pickles[0].removesuffix("data.pkl")
        byteorder = f"{root}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise Invalid(f"{path} was written on a big-endian machine, which is not supported")
        with archive.open(pickles[0]) as file:
            state = _StateDictUnpickler(file, path, storages).load()
        for key, storage in storages.items():
            storage.fill(archive.read(f"{root}data/{key}"))
    return _tensors(path, state)


def _tensors(path: Path, state: object) -> dict[str, np.ndarray]:
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, _TensorRef) for k, v in state.items()
    ):
        raise Invalid(f"{path} holds a pickle that is not a state dict of named tensors")
    return {name: ref.array() for name, ref in state.items()}
