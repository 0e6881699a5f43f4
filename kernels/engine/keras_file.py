"""Saving models as ordinary `.keras` files with a `headstart.json` member that records kind, labels and
the input contract; any Keras can still load the file, and ignores the extra member.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import keras

from headstart.kernels.engine.surgery import INPUT_SHAPE, KINDS, model_kind
from headstart.kernels.errors import Invalid

METADATA_MEMBER = "headstart.json"
# Labels of a large classifier fit easily; a member bigger than this is not ours.
MAX_METADATA_BYTES = 16 * 1024**2
INPUT_CONTRACT = {"shape": list(INPUT_SHAPE), "range": [0, 255], "dtype": "uint8-as-float"}


def save_model(model: keras.Model, path: Path, *, kind: str, labels: list[str] | None) -> int:
    """Write `model` and its metadata to `path` as a `.keras` file, atomically; return its size in bytes."""
    path = Path(path)
    _check_metadata(model, kind, labels)
    metadata = {"kind": kind, "labels": labels, "input": INPUT_CONTRACT}
    # Keras insists on the suffix; the temporary name keeps it so that a crash leaves no half file at `path`.
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp.keras")
    try:
        keras.saving.save_model(model, tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_MEMBER, json.dumps(metadata, indent=1))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The `headstart.json` member of a `.keras` file, or None when the file has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(METADATA_MEMBER)
            except KeyError:
                return None
            if info.file_size > MAX_METADATA_BYTES:
                raise Invalid(f"{METADATA_MEMBER} is {info.file_size:,} bytes, over {MAX_METADATA_BYTES:,}")
            with archive.open(info) as member:
                metadata = json.loads(member.read(MAX_METADATA_BYTES + 1))
    except zipfile.BadZipFile as error:
        raise Invalid(f"{Path(path).name} is not a .keras file (not a zip archive)") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Invalid(f"{METADATA_MEMBER} is not valid JSON") from error
    if not isinstance(metadata, dict):
        raise Invalid(f"{METADATA_MEMBER} must hold a JSON object")
    return metadata


def _check_metadata(model: keras.Model, kind: str, labels: list[str] | None) -> None:
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    actual = model_kind(model)
    if actual != kind:
        raise Invalid(f"the model is a {actual}, not a {kind}")
    if kind == "feature_vector":
        if labels is not None:
            raise Invalid("a feature-vector model has no labels")
        return
    n_outputs = model.outputs[0].shape[-1]
    if labels is None or len(labels) != n_outputs:
        raise Invalid(f"the classifier has {n_outputs} outputs but {len(labels or [])} labels were given")
