"""AddDataset and NewModel against the real catalog service: the long actions show their progress,
and a refused request its one-line reason, changing nothing."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from headstart.kernels.client import HeadstartClient
from headstart.widgets.adding import AddDataset, NewModel, label_list
from headstart.widgets.base import JobBar


def phases(bar: JobBar) -> list[str]:
    seen: list[str] = []
    bar.phase.observe(lambda change: seen.append(change["new"]), names="value")
    return seen


def test_a_dataset_goes_up_and_in_with_its_progress(client: HeadstartClient, shapes_folder: Path) -> None:
    add = AddDataset(client)
    seen = phases(add.progress)
    added: list[object] = []
    add.added = added.append
    name = f"added-{uuid.uuid4().hex[:6]}"
    add.path.value, add.name.value = str(shapes_folder), name

    dataset = add.run()

    assert dataset is not None and dataset.name == name and added == [dataset]
    assert name in {d.name for d in client.datasets.list()}
    assert any(p.startswith("uploading: ") and p.endswith(" MB") for p in seen), seen
    assert any(p.startswith("ingesting: ") and p.endswith(" images") for p in seen), seen
    assert add.progress.bar.bar_style == "success" and add.progress.bar.value == add.progress.bar.max
    assert f"added dataset {name}: 42 images of 3 labels" in add.status.value


def test_a_refused_dataset_says_why_and_adds_nothing(
    client: HeadstartClient, shapes_folder: Path, tmp_path: Path
) -> None:
    before = {d.name for d in client.datasets.list()}
    add = AddDataset(client)
    add.name.value = "never-added"
    assert add.run() is None
    assert "give a folder or a zip" in add.status.value and "headstart-error" in add.status.value

    add.path.value = str(tmp_path / "nowhere")
    assert add.run() is None and "no such file or folder" in add.status.value

    # A folder with one label is not a dataset: the service refuses it after the upload.
    lonely = tmp_path / "lonely"
    shutil.copytree(shapes_folder / "circle", lonely / "circle")
    add.path.value = str(lonely)
    assert add.run() is None
    assert "headstart-error" in add.status.value and "Traceback" not in add.status.value
    assert add.progress.bar.bar_style == "danger" and not add.button.disabled
    assert {d.name for d in client.datasets.list()} == before


def test_a_zoo_model_is_built_with_its_progress_and_a_bad_one_refused(client: HeadstartClient) -> None:
    new = NewModel(client)
    assert new.file.layout.display == "none"  # the upload button shows for uploads only
    new.name.value = f"new-{uuid.uuid4().hex[:6]}"
    new.architecture.value = "mobilenet_v2"
    assert new.weights.value == "imagenet" and "MobileNetV2" in new.about.value
    new.architecture.value = "small_cnn"
    assert new.weights.value is None and new.weights.disabled  # no ImageNet weights to have
    new.labels.value = "circle, square, triangle"

    model = new.run()

    assert model is not None and model.labels == ["circle", "square", "triangle"]
    assert model.architecture == "small_cnn" and not model.public
    assert new.progress.bar.bar_style == "success" and "added model" in new.status.value
    client.models.delete(model.id)

    new.labels.value = "a,,b"
    assert new.run() is None and "one is blank" in new.status.value
    new.labels.value = ""
    new.source.value = "upload .keras"
    assert new.zoo.layout.display == "none" and new.file.layout.display is None
    assert new.run() is None and "choose a .keras file" in new.status.value
    assert label_list(" ") is None
