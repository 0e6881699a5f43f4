"""Sequential surgery: the input contract, body / head split, fresh heads, freezing and body fingerprints.

Backend-neutral (keras, keras.ops and numpy only), so the same code runs under TensorFlow, JAX or PyTorch.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import keras
import numpy as np

from headstart.kernels.errors import Invalid

INPUT_SHAPE = (224, 224, 3)
KINDS = ("classifier", "feature_vector")
HEAD_NAME = "head"
# Layers whose name ends with this hold a model's fixed input normalisation (see architectures.py);
# fine-tuning must not turn them into learnable colour transforms.
PREPROCESSING_SUFFIX = "_preprocessing"


def as_sequential(model: keras.Model) -> keras.Sequential:
    """Return `model` as a Sequential with the input contract (rule 1), or raise Invalid."""
    if isinstance(model, keras.Sequential):
        shape = _single_input_shape(model)
        if shape == (None, *INPUT_SHAPE):
            return model
        # Flexible spatial dims are fine: pin them by rebuilding around the same layer objects.
        return keras.Sequential([keras.Input(INPUT_SHAPE), *model.layers], name=model.name)
    if not isinstance(model, keras.Model) or not type(model).__module__.startswith("keras."):
        raise Invalid(
            f"{type(model).__name__} is a subclassed model; only Sequential and functional models are allowed"
        )
    if len(model.inputs) != 1:
        raise Invalid(f"the model has {len(model.inputs)} inputs; it must take exactly one image input")
    if len(model.outputs) != 1:
        raise Invalid(f"the model has {len(model.outputs)} outputs; it must have exactly one")
    _single_input_shape(model)
    head = _functional_head(model)
    if head is None:
        return keras.Sequential([keras.Input(INPUT_SHAPE), model], name=model.name)
    # A functional classifier keeps its head visible as the Sequential's last layer, so that
    # model_kind and split_model see it (rule 2 keeps heads whose labels match).
    body = keras.Model(model.inputs, head.input, name=f"{model.name}_body")
    return keras.Sequential([keras.Input(INPUT_SHAPE), body, head], name=model.name)


def model_kind(model: keras.Model) -> str:
    """Return "classifier" when the last layer is a softmax Dense, else "feature_vector"."""
    try:
        shape = tuple(model.outputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = None
    if shape is None or len(shape) != 2 or shape[1] is None:
        raise Invalid(f"the model's output has shape {shape}; it must be a vector per image, (None, n)")
    return "classifier" if model.layers and _is_softmax_dense(model.layers[-1]) else "feature_vector"


def split_model(model: keras.Sequential) -> tuple[keras.Sequential, keras.layers.Dense | None]:
    """Split a model into body and head, sharing the layer objects (no head for a feature vector)."""
    if model_kind(model) == "feature_vector":
        return model, None
    if len(model.layers) < 2:
        raise Invalid("the classifier has no layers before its head")
    head = model.layers[-1]
    body = keras.Sequential([keras.Input(INPUT_SHAPE), *model.layers[:-1]], name=f"{model.name}_body")
    feature_shape = tuple(body.outputs[0].shape)
    if len(feature_shape) != 2:
        raise Invalid(f"the layers before the head output shape {feature_shape}, not a feature vector")
    return body, head


def attach_head(
    body: keras.Sequential, n_labels: int, head: keras.layers.Dense | None = None
) -> keras.Sequential:
    """Return body layers plus `head`, or a fresh `Dense(n_labels, softmax)` head."""
    if n_labels < 1:
        raise Invalid(f"a classifier needs at least one label, got {n_labels}")
    if head is None:
        taken = {layer.name for layer in body.layers}
        head = keras.layers.Dense(
            n_labels, activation="softmax", name=HEAD_NAME if HEAD_NAME not in taken else None
        )
    elif head.units != n_labels:
        raise Invalid(f"the head has {head.units} outputs but there are {n_labels} labels")
    try:
        model = keras.Sequential([keras.Input(INPUT_SHAPE), *body.layers, head], name=body.name)
    except ValueError as error:
        raise Invalid(f"the head does not fit the body: {short_reason(error)}") from error
    if tuple(model.outputs[0].shape) != (None, n_labels):
        raise Invalid(f"the body's output does not fit a head: the model outputs {model.outputs[0].shape}")
    return model


def head_from_features(
    feature_dim: int, n_labels: int, head: keras.layers.Dense | None = None
) -> keras.Sequential:
    """A tiny `Input((feature_dim,)) + Dense` model for training a head alone on cached features.

    The new Dense is a copy: training it never changes `head` (rule 3). A fresh one starts at zero,
    predicting every label alike: the softmax regression it learns has one optimum, so random
    starting weights buy nothing, and a feature that never varies in training keeps a zero weight.
    """
    model = keras.Sequential(
        [keras.Input((feature_dim,)), keras.layers.Dense(n_labels, activation="softmax", name=HEAD_NAME)],
        name="head_on_features",
    )
    if head is not None:
        copy_head_weights(head, model)
    else:
        dense = model.layers[-1]
        dense.set_weights([np.zeros(w.shape, dtype=w.dtype) for w in dense.get_weights()])
    return model


def copy_head_weights(src: keras.layers.Dense | keras.Model, dst: keras.layers.Dense | keras.Model) -> None:
    """Copy the kernel and bias of one head into another of the same shape (a model means its last layer)."""
    src_layer, dst_layer = _last_layer(src), _last_layer(dst)
    src_weights, dst_weights = src_layer.get_weights(), dst_layer.get_weights()
    src_shapes = [w.shape for w in src_weights]
    dst_shapes = [w.shape for w in dst_weights]
    if src_shapes != dst_shapes:
        raise Invalid(f"cannot copy head weights of shapes {src_shapes} into shapes {dst_shapes}")
    dst_layer.set_weights(src_weights)


def leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every non-input layer of `model` in order, with nested models flattened."""
    leaves: list[keras.layers.Layer] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            leaves.extend(leaf_layers(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            leaves.append(layer)
    return leaves


def set_trainable(body: keras.Model, fine_tune_layers: int | str) -> None:
    """Freeze the body, then unfreeze its last `fine_tune_layers` leaf layers ("all" for every one).

    BatchNormalization layers always stay frozen: unfrozen, they would update their moving
    statistics on the new dataset and wreck what the body learned (keras.io, "Transfer learning &
    fine-tuning"). Preprocessing layers stay frozen too, so the input contract keeps its meaning.
    """
    leaves = leaf_layers(body)
    if fine_tune_layers == "all":
        k = len(leaves)
    elif isinstance(fine_tune_layers, int) and not isinstance(fine_tune_layers, bool):
        k = fine_tune_layers
    else:
        raise Invalid(f"fine_tune_layers must be a whole number or 'all', got {fine_tune_layers!r}")
    if not 0 <= k <= len(leaves):
        raise Invalid(f"fine_tune_layers must be between 0 and {len(leaves)} for this body, got {k}")
    # Containers stay trainable so that a leaf's flag alone decides; Keras hides every weight of a
    # layer whose container is frozen.
    body.trainable = True
    unfrozen = set(map(id, leaves[len(leaves) - k :]))
    for layer in leaves:
        layer.trainable = id(layer) in unfrozen and not _always_frozen(layer)


def body_fingerprint(body: keras.Model) -> str:
    """sha256 over the body's canonical architecture and every weight's dtype, shape and bytes.

    Layer names are replaced by their position, so the same body hashes the same whether it was
    built, split or loaded again; graph references are renamed the same way, so topology still counts.
    """
    config = keras.saving.serialize_keras_object(body)
    config.pop("compile_config", None)
    names: dict[str, str] = {}
    _collect_layer_names(config, names)
    canonical = _canonical(config, names, is_layer=True)
    digest = hashlib.sha256()
    digest.update(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode())
    for weight in body.weights:
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def count_params(model: keras.layers.Layer) -> int:
    """Number of scalars in every weight of the model, trainable or not."""
    return int(sum(math.prod(weight.shape) for weight in model.weights))


def short_reason(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception message, cut short, for a one-line user-facing error."""
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:limit]


def _single_input_shape(model: keras.Model) -> tuple[int | None, ...]:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise Invalid("the model has no defined input; build it with keras.Input((224, 224, 3))")
    if len(inputs) != 1:
        raise Invalid(f"the model has {len(inputs)} inputs; it must take exactly one image input")
    shape = tuple(inputs[0].shape)
    fits = (
        len(shape) == 4
        and shape[3] == INPUT_SHAPE[2]
        and all(dim in (None, want) for dim, want in zip(shape[1:3], INPUT_SHAPE[:2], strict=True))
    )
    if not fits:
        raise Invalid(
            f"the model's input has shape {shape}; it must take RGB images of shape (None, 224, 224, 3)"
        )
    return shape


def _functional_head(model: keras.Model) -> keras.layers.Dense | None:
    """The functional model's output layer when it is a softmax Dense called once on one tensor."""
    history = getattr(model.outputs[0], "_keras_history", None)
    layer = history[0] if history else None
    # A layer called more than once has no single input to cut the graph at.
    if layer is None or not _is_softmax_dense(layer) or len(layer._inbound_nodes) != 1:
        return None
    return layer if isinstance(layer.input, keras.KerasTensor) else None


def _is_softmax_dense(layer: object) -> bool:
    return isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.softmax


def _always_frozen(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization) or layer.name.endswith(PREPROCESSING_SUFFIX)


def _last_layer(obj: keras.layers.Layer) -> keras.layers.Layer:
    return _last_layer(obj.layers[-1]) if isinstance(obj, keras.Model) else obj


def _collect_layer_names(entry: dict[str, Any], names: dict[str, str]) -> None:
    """Number every layer (and functional op) name in serialization order, nested models included."""
    config = entry.get("config")
    if not isinstance(config, dict):
        return
    for name in (entry.get("name"), config.get("name")):
        if isinstance(name, str) and name not in names:
            names[name] = f"#{len(names)}"
    for layer in config.get("layers", ()) or ():
        if isinstance(layer, dict):
            _collect_layer_names(layer, names)


def _canonical_config_item(key: str, value: Any, names: dict[str, str]) -> Any:
    if key == "name" and isinstance(value, str):
        return names.get(value, value)
    if key == "layers" and isinstance(value, list):
        return [_canonical(layer, names, is_layer=True) for layer in value]
    return _canonical(value, names)


def _canonical(obj: Any, names: dict[str, str], *, is_layer: bool = False) -> Any:
    """A copy of a serialized config with layer names replaced and run-dependent ids dropped."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            # Object ids change per process, and trainable flags do not change what a body computes.
            if key in ("shared_object_id", "trainable"):
                continue
            if is_layer and key == "name" and isinstance(value, str):
                out[key] = names.get(value, value)
            elif is_layer and key == "config" and isinstance(value, dict):
                out[key] = {
                    k: _canonical_config_item(k, v, names)
                    for k, v in value.items()
                    if k not in ("shared_object_id", "trainable")
                }
            else:
                out[key] = _canonical(value, names)
        return out
    if isinstance(obj, list | tuple):
        # Graph references look like [layer_name, node_index, tensor_index].
        if (
            len(obj) == 3
            and isinstance(obj[0], str)
            and obj[0] in names
            and all(isinstance(i, int) and not isinstance(i, bool) for i in obj[1:])
        ):
            return [names[obj[0]], obj[1], obj[2]]
        return [_canonical(item, names) for item in obj]
    return obj
