"""Checks on uploaded `.keras` files (rules 6 and 8): size limits and an allow-list of built-in Keras
objects, all read from the zip before Keras deserializes anything.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras

from headstart.kernels.engine.limits import ModelLimits, check_model_limits
from headstart.kernels.engine.surgery import as_sequential, model_kind, short_reason
from headstart.kernels.errors import Invalid, TooLarge

CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "model.weights.h5"
# config.json of a ResNet50 is about 150 KB; anything near this is not a real image model.
MAX_CONFIG_BYTES = 32 * 1024**2

# Image-model layers that carry no code of their own: every one is a fixed Keras class whose config
# holds numbers, shapes and names of other allowed objects.
ALLOWED_LAYERS = frozenset(
    {
        "Activation",
        "Add",
        "Average",
        "AveragePooling2D",
        "BatchNormalization",
        "CenterCrop",
        "Concatenate",
        "Conv2D",
        "Conv2DTranspose",
        "Cropping2D",
        "Dense",
        "DepthwiseConv2D",
        "Dropout",
        "ELU",
        "Flatten",
        "GaussianDropout",
        "GaussianNoise",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
        "GroupNormalization",
        "Identity",
        "InputLayer",
        "LayerNormalization",
        "LeakyReLU",
        "MaxPooling2D",
        "Maximum",
        "Minimum",
        "Multiply",
        "Normalization",
        "Permute",
        "PReLU",
        "RandomBrightness",
        "RandomContrast",
        "RandomFlip",
        "RandomRotation",
        "RandomTranslation",
        "RandomZoom",
        "ReLU",
        "Rescaling",
        "Reshape",
        "Resizing",
        "SeparableConv2D",
        "Softmax",
        "SpatialDropout2D",
        "Subtract",
        "UpSampling2D",
        "ZeroPadding2D",
    }
)

# (module, class_name) pairs that real built-in models write besides layers. Ops appear where a
# functional model does arithmetic on tensors (MobileNetV3's hard sigmoid is `(x + 3) * (1 / 6)`).
ALLOWED_OBJECTS: dict[str | None, frozenset[str]] = {
    "keras.layers": ALLOWED_LAYERS,
    "keras": frozenset({"Sequential", "DTypePolicy", "FloatDTypePolicy"}),
    "keras.src.models.functional": frozenset({"Functional"}),
    "keras.src.ops.numpy": frozenset({"Add", "Subtract", "Multiply", "TrueDivide", "Divide"}),
    "keras.initializers": frozenset(
        {
            "Constant",
            "GlorotNormal",
            "GlorotUniform",
            "HeNormal",
            "HeUniform",
            "Identity",
            "LecunNormal",
            "LecunUniform",
            "Ones",
            "Orthogonal",
            "RandomNormal",
            "RandomUniform",
            "TruncatedNormal",
            "VarianceScaling",
            "Zeros",
        }
    ),
    "keras.regularizers": frozenset({"L1", "L2", "L1L2", "OrthogonalRegularizer"}),
    "keras.constraints": frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"}),
    # Symbolic tensors in a functional graph: shapes, a dtype and a reference to a layer by name.
    None: frozenset({"__keras_tensor__"}),
}

# Activations are written as plain names; Keras resolves unknown names through registered custom
# objects, so only its own are let through.
ALLOWED_ACTIVATIONS = frozenset(
    {
        "celu",
        "elu",
        "exponential",
        "gelu",
        "glu",
        "hard_shrink",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "leaky_relu",
        "linear",
        "log_sigmoid",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "soft_shrink",
        "softmax",
        "softplus",
        "softsign",
        "sparse_plus",
        "sparse_sigmoid",
        "sparsemax",
        "squareplus",
        "swish",
        "tanh",
        "tanh_shrink",
        "threshold",
    }
)


@dataclass(frozen=True)
class KerasFileFacts:
    """What inspecting a `.keras` file found, before anything in it was deserialized."""

    size_bytes: int
    params: int
    config: dict[str, Any]


def inspect_keras_file(path: Path, limits: ModelLimits) -> KerasFileFacts:
    """Check a `.keras` file's size, config allow-list and parameter count without loading it."""
    path = Path(path)
    if path.suffix != ".keras":
        raise Invalid(f"model uploads must be .keras files, not {path.name!r}")
    size_bytes = path.stat().st_size
    check_model_limits(0, size_bytes, limits)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            unpacked = sum(info.file_size for info in members.values())
            # The declared sizes bound what Keras will inflate; a zip bomb stops here.
            if unpacked > limits.max_model_bytes:
                raise TooLarge(
                    f"the model unpacks to {unpacked:,} bytes, over the limit of "
                    f"{limits.max_model_bytes:,} bytes",
                    detail={"limit": limits.max_model_bytes, "size": unpacked},
                )
            config = _read_config(archive, members)
            check_config(config)
            if WEIGHTS_MEMBER not in members:
                raise Invalid(f"the .keras file has no {WEIGHTS_MEMBER}")
            with archive.open(WEIGHTS_MEMBER) as weights:
                params = _count_h5_params(weights)
    except zipfile.BadZipFile as error:
        raise Invalid(f"{path.name} is not a .keras file (not a zip archive)") from error
    check_model_limits(params, size_bytes, limits)
    return KerasFileFacts(size_bytes=size_bytes, params=params, config=config)


def check_config(config: dict[str, Any]) -> None:
    """Refuse a model config that names anything outside the allow-list of built-in Keras objects."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise Invalid("config.json does not describe a Keras model")
    # Keras drops the top-level compile config when loading with compile=False; nested ones it
    # would deserialize, so those are walked like everything else.
    _check_node({key: value for key, value in config.items() if key != "compile_config"})


def load_keras_file(path: Path, limits: ModelLimits) -> keras.Sequential:
    """Inspect, load with `safe_mode=True`, and return the model as a Sequential with the input contract."""
    inspect_keras_file(path, limits)
    try:
        model = keras.saving.load_model(Path(path), compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a malformed file; all mean the same here.
        raise Invalid(f"the model could not be loaded: {short_reason(error)}") from error
    sequential = as_sequential(model)
    model_kind(sequential)
    return sequential


def _read_config(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict[str, Any]:
    info = members.get(CONFIG_MEMBER)
    if info is None:
        raise Invalid(f"the .keras file has no {CONFIG_MEMBER}")
    if info.file_size > MAX_CONFIG_BYTES:
        raise Invalid(f"{CONFIG_MEMBER} is {info.file_size:,} bytes, over {MAX_CONFIG_BYTES:,}")
    try:
        with archive.open(info) as member:
            return json.loads(member.read(MAX_CONFIG_BYTES + 1))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Invalid(f"{CONFIG_MEMBER} is not valid JSON: {short_reason(error)}") from error


def _check_node(node: Any) -> None:
    if isinstance(node, dict):
        if {"class_name", "module", "registered_name"} & node.keys():
            _check_object(node)
        for key, value in node.items():
            if key in ("activation", "recurrent_activation") and isinstance(value, str):
                if value not in ALLOWED_ACTIVATIONS:
                    raise Invalid(f"the model uses activation {value!r}, which is not a built-in Keras one")
            else:
                _check_node(value)
    elif isinstance(node, list):
        for item in node:
            _check_node(item)


def _check_object(node: dict[str, Any]) -> None:
    class_name = node.get("class_name")
    module = node.get("module")
    registered = node.get("registered_name")
    allowed = isinstance(class_name, str) and class_name in ALLOWED_OBJECTS.get(module, frozenset())
    # Built-ins serialize with no registered name or their own class name; anything else was
    # registered by user code (`package>Name`).
    if not allowed or registered not in (None, class_name):
        where = f" from {module}" if module and module != "keras.layers" else ""
        shown = registered if isinstance(registered, str) and registered != class_name else class_name
        raise Invalid(f"the model uses {shown!r}{where}, which is not an allowed built-in Keras layer")


def _count_h5_params(fileobj: Any) -> int:
    """Sum of dataset sizes from h5 metadata alone; optimizer state is not part of the model."""
    try:
        with h5py.File(fileobj, "r") as weights:
            return _count_group(weights, top=True)
    except OSError as error:
        raise Invalid(f"{WEIGHTS_MEMBER} is not a valid HDF5 file: {short_reason(error)}") from error


def _count_group(group: h5py.Group, *, top: bool = False) -> int:
    total = 0
    for name in group:
        if top and name == "optimizer":
            continue
        # Links and virtual datasets could make Keras read other files on the platform.
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise Invalid(f"{WEIGHTS_MEMBER} links to {name!r} outside itself")
        item = group[name]
        if isinstance(item, h5py.Group):
            total += _count_group(item)
        elif isinstance(item, h5py.Dataset):
            if item.is_virtual or item.external:
                raise Invalid(f"{WEIGHTS_MEMBER} stores {name!r} outside itself")
            total += 0 if item.shape is None else math.prod(item.shape)
    return total
