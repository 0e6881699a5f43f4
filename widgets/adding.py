"""Adding to the catalog from a notebook: `AddDataset` ingests images, `NewModel` builds or uploads one.

Each shows its long action as it goes, the upload's bytes and then the service's job phase by phase,
and a refused request as the service's one-line reason. Files come from the kernel's disk (a path)
or from the browser (an upload button), which land in a scratch folder for the request.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.kernels.engine.images import RESIZE_POLICIES
from headstart.kernels.engine.zoo import ARCHITECTURES
from headstart.kernels.errors import HeadstartError, Invalid
from headstart.kernels.schemas import DatasetPublic, ModelPublic
from headstart.widgets.base import JobBar, Status, resolve_client

WIDE = {"description_width": "initial"}


def uploaded_file(upload: w.FileUpload, scratch: Path) -> Path | None:
    """The file chosen in an upload button, written into `scratch`; None when none is chosen."""
    if not upload.value:
        return None
    chosen = upload.value[0]
    path = scratch / (Path(str(chosen["name"])).name or "upload")
    path.write_bytes(bytes(chosen["content"]))
    return path


def label_list(text: str) -> list[str] | None:
    """Comma-separated labels; None when the box is empty (a feature vector)."""
    labels = [label.strip() for label in text.split(",")]
    if not any(labels):
        return None
    if not all(labels):
        raise Invalid("labels: one is blank; separate labels with single commas")
    return labels


class Adding(w.VBox):
    """What both forms share: a client, an action button, its progress bar and a status line."""

    action = "Add"

    def __init__(self, client: HeadstartClient | None, fields: list[w.Widget]) -> None:
        self.client = resolve_client(client)
        self.button = w.Button(description=self.action, button_style="primary", icon="plus")
        self.progress = JobBar()
        self.status = Status()
        self.added: Callable[[Any], None] | None = None  # told what was added, e.g. to refresh a picker
        self.button.on_click(lambda _: self.run())
        super().__init__([*fields, w.HBox([self.button, self.progress]), self.status])

    def run(self) -> Any:
        """Carry out the action; a refusal is shown in the status line and changes nothing."""
        self.button.disabled = True
        self.status.value = ""
        try:
            with tempfile.TemporaryDirectory(prefix="headstart-add-") as scratch:
                made = self._act(Path(scratch))
        except HeadstartError as error:
            self.progress.end("refused", ok=False)
            self.status.error(error)
            return None
        finally:
            self.button.disabled = False
        self.progress.end("done")
        if self.added is not None:
            self.added(made)
        return made

    def _act(self, scratch: Path) -> Any:
        raise NotImplementedError


class AddDataset(Adding):
    """A folder of label folders or a zip of one, from the kernel's disk or the browser, ingested."""

    action = "Add dataset"

    def __init__(self, client: HeadstartClient | None = None) -> None:
        self.path = w.Text(
            description="folder or zip",
            placeholder="a path on the kernel's machine, or upload a zip",
            style=WIDE,
            layout=w.Layout(width="460px", max_width="100%"),
        )
        self.upload = w.FileUpload(accept=".zip", description="Upload zip", layout=w.Layout(width="auto"))
        self.name = w.Text(description="name", style=WIDE, layout=w.Layout(width="320px", max_width="100%"))
        self.description = w.Text(
            description="description", style=WIDE, layout=w.Layout(width="460px", max_width="100%")
        )
        self.resize_policy = w.Dropdown(
            options=list(RESIZE_POLICIES), value=RESIZE_POLICIES[0], description="resize", style=WIDE
        )
        self.skip_invalid = w.Checkbox(value=False, description="skip unreadable images", indent=False)
        super().__init__(
            client,
            [
                w.HBox([self.path, self.upload], layout=w.Layout(flex_flow="row wrap")),
                self.name,
                self.description,
                w.HBox([self.resize_policy, self.skip_invalid], layout=w.Layout(flex_flow="row wrap")),
            ],
        )

    def _act(self, scratch: Path) -> DatasetPublic:
        source = uploaded_file(self.upload, scratch) or (Path(self.path.value) if self.path.value else None)
        if source is None:
            raise Invalid("give a folder or a zip: a path on the kernel's machine, or upload a zip")
        if not self.name.value.strip():
            raise Invalid("give the dataset a name")
        self.progress.begin("uploading")
        dataset = self.client.datasets.add(
            source,
            name=self.name.value.strip(),
            description=self.description.value,
            skip_invalid=self.skip_invalid.value,
            resize_policy=self.resize_policy.value,
            progress=lambda done, total: self.progress.step("uploading", done, total, "bytes"),
            on_ingest=lambda done, total: self.progress.step("ingesting", done, total, "images"),
        )
        self.upload.value = ()
        self.path.value = self.name.value = self.description.value = ""  # ready for the next one
        images = sum(dataset.counts.values())
        self.status.ok(f"added dataset {dataset.name}: {images} images of {len(dataset.labels)} labels")
        return dataset


class NewModel(Adding):
    """A model built from the zoo (ImageNet weights or random) or uploaded as a `.keras` file."""

    action = "Add model"

    def __init__(self, client: HeadstartClient | None = None) -> None:
        self.source = w.ToggleButtons(options=["from the zoo", "upload .keras"], value="from the zoo")
        self.architecture = w.Dropdown(
            options=list(ARCHITECTURES),
            value="small_cnn" if "small_cnn" in ARCHITECTURES else next(iter(ARCHITECTURES)),
            description="architecture",
            style=WIDE,
        )
        self.about = w.HTML()
        self.weights = w.Dropdown(
            options=[("ImageNet", "imagenet"), ("random", None)],
            value=None,
            description="weights",
            style=WIDE,
        )
        self.upload = w.FileUpload(
            accept=".keras", description="Choose .keras", layout=w.Layout(width="auto")
        )
        self.name = w.Text(description="name", style=WIDE, layout=w.Layout(width="320px", max_width="100%"))
        self.labels = w.Text(
            description="labels",
            placeholder="comma-separated; empty for a feature vector",
            style=WIDE,
            layout=w.Layout(width="460px", max_width="100%"),
        )
        self.public = w.Checkbox(value=False, description="public", indent=False)
        self.zoo = w.VBox(
            [w.HBox([self.architecture, self.weights], layout=w.Layout(flex_flow="row wrap")), self.about]
        )
        self.file = w.HBox([self.upload], layout=w.Layout(display="none"))
        super().__init__(client, [self.source, self.zoo, self.file, self.name, self.labels, self.public])
        self.source.observe(lambda _: self._show_source(), names="value")
        self.architecture.observe(lambda _: self._describe(), names="value")
        self._describe()

    def _describe(self) -> None:
        arch = ARCHITECTURES[self.architecture.value]
        # A pretrained body is the point of transfer learning: its weights, where it has them.
        self.weights.value = "imagenet" if arch.pretrained else None
        self.weights.disabled = not arch.pretrained
        weights = "ImageNet weights or random" if arch.pretrained else "random weights only"
        self.about.value = f"<i>{html.escape(arch.description)} ({weights})</i>"

    def _show_source(self) -> None:
        zoo = self.source.value == "from the zoo"
        self.zoo.layout.display = None if zoo else "none"
        self.file.layout.display = "none" if zoo else None

    def _act(self, scratch: Path) -> ModelPublic:
        name = self.name.value.strip()
        if not name:
            raise Invalid("give the model a name")
        labels = label_list(self.labels.value)

        def job(phase: str | None, done: int, total: int) -> None:
            self.progress.step(phase or "building", done, total)

        if self.source.value == "from the zoo":
            self.progress.begin("building")
            model = self.client.models.create(
                name=name,
                architecture=self.architecture.value,
                labels=labels,
                weights=self.weights.value,
                public=self.public.value,
                progress=job,
            )
        else:
            path = uploaded_file(self.upload, scratch)
            if path is None:
                raise Invalid("choose a .keras file to upload")
            self.progress.begin("uploading")
            model = self.client.models.upload(
                path,
                name=name,
                labels=labels,
                public=self.public.value,
                sent=lambda done, total: self.progress.step("uploading", done, total, "bytes"),
                progress=job,
            )
            self.upload.value = ()
        self.status.ok(f"added model {model.name} (id {model.id}), {model.params:,} parameters")
        return model
