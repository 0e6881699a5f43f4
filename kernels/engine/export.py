"""Writing a model in TensorFlow's formats, for runtimes without Keras: a SavedModel, or a TFLite file.

Both formats are TensorFlow's own. Keras writes a SavedModel whatever its backend
(`model.export(format="tf_saved_model")`); only TensorFlow's converter makes a TFLite file, and it is
reached through the engine's one door to a backend's library (`devices.tflite_from_saved_model`).

An export is one zip, as Teachable Machine ships its TFLite models: the model (the `saved_model/`
folder, or `model.tflite`), `labels.txt` with one label per line in output order (a copy sits in
the SavedModel's `assets/` too, so the folder carries its labels on its own), and `headstart.json`,
the kind, labels and input contract that a `.keras` file of the catalog carries. A feature vector
has no labels, so its zip has no `labels.txt`.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
import zipfile
from pathlib import Path

import keras

from headstart.kernels.engine.devices import tflite_from_saved_model
from headstart.kernels.engine.keras_file import INPUT_CONTRACT, METADATA_MEMBER
from headstart.kernels.errors import Invalid

# The formats that are zips made here; "keras" is the catalog's own file (keras_file.py).
ZIP_FORMATS = ("saved_model", "tflite")
SAVED_MODEL_FOLDER = "saved_model"
TFLITE_FILE = "model.tflite"
LABELS_FILE = "labels.txt"


def export_model(model: keras.Model, path: Path, *, format: str, kind: str, labels: list[str] | None) -> int:
    """Write `model` as a zip in `format` ("saved_model" or "tflite") at `path`, atomically; return
    its size in bytes."""
    if format not in ZIP_FORMATS:
        raise Invalid(f"unknown export format {format!r}; choose one of {', '.join(ZIP_FORMATS)}")
    lines = labels_text(labels)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="headstart-export-") as work:
        saved_model = Path(work) / SAVED_MODEL_FOLDER
        model.export(str(saved_model), format="tf_saved_model", verbose=False)
        members: dict[str, Path] = {}
        if format == "saved_model":
            if lines is not None:
                (saved_model / "assets").mkdir(exist_ok=True)
                (saved_model / "assets" / LABELS_FILE).write_text(lines)
            members.update(_files(saved_model, SAVED_MODEL_FOLDER))
        else:
            tflite = Path(work) / TFLITE_FILE
            tflite.write_bytes(tflite_from_saved_model(str(saved_model)))
            members[TFLITE_FILE] = tflite
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for name, source in sorted(members.items()):
                    archive.write(source, name)
                if lines is not None:
                    archive.writestr(LABELS_FILE, lines)
                metadata = {"kind": kind, "labels": labels, "input": INPUT_CONTRACT, "format": format}
                archive.writestr(METADATA_MEMBER, json.dumps(metadata, indent=1))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return path.stat().st_size


def labels_text(labels: list[str] | None) -> str | None:
    """`labels.txt`'s text, one label per line in output order; None for a model without labels."""
    if not labels:
        return None
    broken = [label for label in labels if label.splitlines() != [label]]
    if broken:
        raise Invalid(f"label {broken[0]!r} holds a line break, which labels.txt cannot hold")
    return "".join(f"{label}\n" for label in labels)


def _files(folder: Path, prefix: str) -> dict[str, Path]:
    """Every file under `folder`, by its name in the zip."""
    return {
        f"{prefix}/{path.relative_to(folder).as_posix()}": path
        for path in folder.rglob("*")
        if path.is_file()
    }
