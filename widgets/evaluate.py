"""`Evaluate`: score a model on your own images or on a dataset split, and see where it goes wrong.

It also holds the per-class rendering that the leaderboard shares: precision and recall side by side;
the confusion matrix is a heatmap (heatmap.py).
"""

from __future__ import annotations

import html
import mimetypes
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.kernels.schemas import EvaluationPublic, Split
from headstart.widgets.base import JobBar, Status, replace_options, resolve_client
from headstart.widgets.heatmap import ConfusionMatrix

THUMBNAIL_PX = 112


def _figure(value: float | None, digits: int = 3) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}f}"


def _bar(value: float | None, colour: str) -> str:
    if value is None:
        return "<td style='padding:1px 6px;color:var(--jp-ui-font-color2)'>&ndash;</td>"
    return (
        f"<td style='padding:1px 6px;min-width:90px'><div style='display:flex;align-items:center;gap:4px'>"
        f"<div style='background:{colour};height:9px;width:{value * 60:.0f}px'></div>{value:.2f}</div></td>"
    )


def per_class_html(columns: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> str:
    """Per-class precision and recall of one or more evaluations, side by side, one row per label.

    `columns` pairs a heading (a model's name) with its result's `per_class` list; labels are the
    union, in first-seen order, so models scored on the same dataset line up row by row.
    """
    if not columns:
        return "<i>nothing to compare</i>"
    labels: list[str] = []
    tables: list[dict[str, dict[str, Any]]] = []
    for _, per_class in columns:
        tables.append({entry["label"]: entry for entry in per_class})
        labels.extend(entry["label"] for entry in per_class if entry["label"] not in labels)
    if not labels:
        return "<i>no per-class figures: the models were not scored against labels</i>"
    heads = "".join(
        "<th colspan='2' style='padding:2px 6px;border-bottom:1px solid var(--jp-border-color1)'>"
        f"{html.escape(name)}</th>"
        for name, _ in columns
    )
    sub = "<th style='padding:1px 6px'>precision</th><th style='padding:1px 6px'>recall</th>" * len(columns)
    body = []
    for label in labels:
        cells = ""
        for table in tables:
            entry = table.get(label, {})
            cells += _bar(entry.get("precision"), "#2166ac") + _bar(entry.get("recall"), "#67a9cf")
        body.append(f"<tr><th style='text-align:right;padding:1px 6px'>{html.escape(label)}</th>{cells}</tr>")
    return (
        "<div class='headstart-per-class headstart-scroll'"
        " style='max-height:420px;overflow:auto;font-size:12px'>"
        f"<table><thead><tr><th></th>{heads}</tr><tr><th>label</th>{sub}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _top_html(top: Sequence[dict[str, Any]]) -> str:
    if not top:
        return "<i>a feature vector: no labels to predict</i>"
    # The share first and never broken from its label's start; a long label wraps between its words.
    # The bar beneath spans the tile at 100%.
    lines = "".join(
        f"<div style='margin-bottom:2px'><div><b style='white-space:nowrap'>{p['probability']:.0%}</b> "
        f"{html.escape(str(p['label']))}</div>"
        f"<div style='background:var(--jp-brand-color1, #2166ac);height:4px;"
        f"width:{p['probability'] * 100:.0f}%'></div></div>"
        for p in top
    )
    return f"<div style='font-size:11px;width:{THUMBNAIL_PX}px;line-height:1.25'>{lines}</div>"


class Evaluate(w.VBox):
    """Pick a model, then upload images for its top-k predictions, or score it on a dataset split."""

    def __init__(self, client: HeadstartClient | None = None, *, model_id: int | None = None) -> None:
        self.client = resolve_client(client)
        self.status = Status()
        self.model = w.Dropdown(description="model", layout=w.Layout(width="420px"))
        self.top_k = w.BoundedIntText(
            value=3, min=1, max=20, description="top k", layout=w.Layout(width="140px")
        )
        self.upload = w.FileUpload(
            accept="image/*", multiple=True, description="Upload images", layout=w.Layout(width="auto")
        )
        self.dataset = w.Dropdown(description="dataset", layout=w.Layout(width="300px"))
        self.split = w.Dropdown(
            options=tuple(reversed(get_args(Split))),
            value="test",
            description="split",
            layout=w.Layout(width="200px"),
        )
        self.run_button = w.Button(description="Score split", icon="play")
        self.progress = JobBar()
        self.thumbnails = w.Box(layout=w.Layout(display="flex", flex_flow="row wrap"))
        self.summary = w.HTML()
        self.per_class = w.HTML()
        self.confusion = ConfusionMatrix()
        self.predictions: list[dict[str, Any]] = []
        self.evaluation: EvaluationPublic | None = None

        self.upload.observe(self._uploaded, names="value")
        self.run_button.on_click(lambda _: self.run_split())
        self.refresh()
        if model_id is not None:
            self.model.value = int(model_id)
        super().__init__(
            [
                w.HBox([self.model, self.top_k]),
                w.HTML("<b>Your images</b>"),
                self.upload,
                self.thumbnails,
                w.HTML("<b>A dataset split</b>"),
                w.HBox([self.dataset, self.split, self.run_button], layout=w.Layout(flex_flow="row wrap")),
                self.progress,
                self.summary,
                self.per_class,
                self.confusion,
                self.status,
            ]
        )

    def refresh(self) -> None:
        """Reload the models and datasets you may see."""
        try:
            models = self.client.models.list()
            datasets = self.client.datasets.list()
        except Exception as error:
            self.status.error(error)
            return
        replace_options(self.model, [(f"{m.name} v{m.version} · {m.owner} · {m.kind}", m.id) for m in models])
        replace_options(self.dataset, [(d.name, d.id) for d in datasets])
        if self.dataset.value is None and datasets:
            self.dataset.value = datasets[-1].id  # the newest, most likely the one just added

    def predict_files(self, paths: Sequence[Path | str]) -> list[dict[str, Any]]:
        """Predict each image's top-k labels and show it as a thumbnail beside them."""
        if self.model.value is None:
            self.status.error("pick a model first")
            return []
        files = [Path(p) for p in paths]
        try:
            result = self.client.evaluations.on_files(self.model.value, files, top_k=int(self.top_k.value))
            pictures = [f.read_bytes() for f in files]
        except Exception as error:
            self.status.error(error)
            return []
        self.predictions = list(result.get("predictions", []))
        tiles = []
        names = [file.name for file in files]
        for file, picture, prediction in zip(files, pictures, self.predictions, strict=False):
            # Files of one name from several folders (a dataset's label folders) keep their folder.
            shown = file.name if names.count(file.name) == 1 else f"{file.parent.name}/{file.name}"
            kind = (mimetypes.guess_type(file.name)[0] or "image/png").split("/")[-1]
            image = w.Image(value=picture, format=kind, width=THUMBNAIL_PX, height=THUMBNAIL_PX)
            caption = w.HTML(
                f"<div style='font-size:11px;font-weight:bold'>{html.escape(shown)}</div>"
                + _top_html(prediction.get("top", []))
            )
            tiles.append(
                w.VBox([image, caption], layout=w.Layout(width=f"{THUMBNAIL_PX + 8}px", margin="0 8px 8px 0"))
            )
        self.thumbnails.children = tiles
        self.status.ok(f"{len(self.predictions)} images predicted")
        return self.predictions

    def _uploaded(self, change: dict[str, Any]) -> None:
        # FileUpload holds the bytes in the kernel; the client sends files, so they go to a scratch
        # folder for the request and are gone again once the thumbnails hold their bytes.
        uploads = change["new"]
        if not uploads:
            return
        with tempfile.TemporaryDirectory(prefix="headstart-predict-") as scratch:
            paths = []
            for n, upload in enumerate(uploads):
                name = Path(str(upload["name"])).name or f"image-{n}"
                path = Path(scratch) / f"{n:04d}-{name}"
                path.write_bytes(bytes(upload["content"]))
                paths.append(path)
            self.predict_files(paths)
        # Emptied, so that choosing the same files again is a change and predicts again.
        self.upload.value = ()

    def run_split(self) -> EvaluationPublic | None:
        """Score the model on the chosen split: accuracy, per-class figures and the confusion matrix."""
        if self.model.value is None or self.dataset.value is None:
            self.status.error("pick a model and a dataset first")
            return None
        self.status.value = ""
        self.progress.begin("scoring")
        try:
            evaluation = self.client.evaluations.on_split(
                self.model.value,
                self.dataset.value,
                self.split.value,
                top_k=int(self.top_k.value),
                progress=lambda phase, done, total: self.progress.step(phase or "scoring", done, total),
            )
            labels = self.client.datasets.get(self.dataset.value).labels
        except Exception as error:
            self.progress.end("failed", ok=False)
            self.status.error(error)
            return None
        self.progress.end(f"scored {evaluation.count} images")
        self.evaluation = evaluation
        result = evaluation.result or {}
        note = result.get("note") or ""
        self.summary.value = (
            f"<b>accuracy</b> {_figure(evaluation.accuracy)} &nbsp; <b>loss</b> {_figure(evaluation.loss)}"
            f" &nbsp; on {evaluation.count} images of {html.escape(str(self.split.value))}"
            + (f"<br><i>{html.escape(note)}</i>" if note else "")
        )
        self.per_class.value = per_class_html([(self.model.label or "", result.get("per_class", []))])
        self.confusion.show(result.get("confusion", []), labels)
        self.status.ok(f"scored version {evaluation.model_version} on {self.split.value}")
        return evaluation
