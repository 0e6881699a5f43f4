"""Model cards: the read-only notebook of every public model, regenerated when the model changes.

A card is built from `notebooks/model_card.ipynb`: its facts, lineage, training histories (with
their plots rendered in, and drawn again by their cells' code), leaderboard results, and code that
reads the model's facts and scores from the catalog, downloads it and runs it on an image
(tests/extension/test_card_notebook.py runs every cell). Cards live in the store at
`notebooks/<model id>.ipynb`. A private model has none: making a model private, or
deleting it, removes its card. Text that users wrote is escaped, because the card is also served
rendered as HTML to every signed-in user.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import CatalogModel, Dataset, Evaluation, Training, User
from headstart.kernels.errors import NotFound

if TYPE_CHECKING:
    from headstart.extension.manager import Catalog

TEMPLATE_NAME = "model_card.ipynb"


def template_path() -> Path:
    """The card template: the repository's `notebooks/`, or the copy installed under share/."""
    here = Path(__file__).resolve().parent.parent / "notebooks" / TEMPLATE_NAME
    if here.exists():
        return here
    return Path(sys.prefix) / "share" / "headstart" / "notebooks" / TEMPLATE_NAME


def card_key(model_id: int) -> str:
    return f"notebooks/{model_id}.ipynb"


def _text(value: object) -> str:
    """User text made safe for Markdown rendered to HTML."""
    return html.escape(str(value)).replace("|", "&#124;").replace("\n", " ")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "*None yet.*"
    head = "| " + " | ".join(columns) + " |\n| " + " | ".join("---" for _ in columns) + " |\n"
    return head + "\n".join("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return _text(value)


def _finite(epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Epoch figures that read back as Python literals: a NaN or infinite figure becomes None."""
    return [
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in epoch.items()}
        for epoch in epochs
    ]


def _history_plot(epochs: list[dict[str, Any]], title: str) -> dict[str, Any]:
    """A PNG of one training's loss and accuracy curves, as a notebook display output."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from headstart.kernels.history_plot import plot_history

    figure = plot_history(epochs, title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    pyplot.close(figure)
    return {
        "output_type": "display_data",
        "data": {
            "image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "text/plain": ["<figure>"],
        },
        "metadata": {},
    }


class ModelCards:
    """Builds, stores, removes and serves the cards of public models."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def refresh(self, model_id: int) -> None:
        """Bring a model's card up to date: written for a public model, removed otherwise."""
        with transaction(self.catalog.engine) as session:
            model = session.get(CatalogModel, model_id)
            facts = self._facts(session, model) if model is not None and model.public else None
        if facts is None:
            self.catalog.store.delete(card_key(model_id))
            return
        notebook = self.build(facts)
        self.catalog.store.replace(card_key(model_id), json.dumps(notebook, indent=1).encode())

    def read(self, model_id: int) -> dict[str, Any]:
        """The card of a public model; every signed-in user may read it, and a private model has none."""
        path = self.catalog.store.path(card_key(model_id))
        with transaction(self.catalog.engine) as session:
            model = session.get(CatalogModel, model_id)
            public = model is not None and model.public
        if not public:
            raise NotFound(f"model {model_id} has no card: only public models have one")
        if not path.exists():
            self.refresh(model_id)
        return json.loads(path.read_text())

    def html(self, model_id: int) -> str:
        """The card rendered as a page, for viewing without a kernel."""
        import nbformat
        from nbconvert import HTMLExporter

        notebook = nbformat.from_dict(self.read(model_id))
        body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
        return body

    def build(self, facts: dict[str, Any]) -> dict[str, Any]:
        """The card notebook for the facts gathered by `_facts`, from the template."""
        template = json.loads(template_path().read_text())
        fields = {
            "name": _text(facts["name"]),
            "description": _text(facts["description"]) or "*No description.*",
            "facts": _table([facts["table"]], list(facts["table"])),
            "lineage": facts["lineage"],
            "histories": _table(
                facts["trainings"], ["training", "dataset", "from", "epochs", "val_accuracy"]
            ),
            "leaderboards": _table(
                facts["evaluations"], ["dataset", "version", "accuracy", "loss", "images"]
            ),
            "model_id": str(facts["id"]),
            # A Python literal for the card's code: the datasets its current version was scored on.
            "scored_datasets": repr(facts["scored_datasets"]),
        }
        cells = []
        for cell in template["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell = {**cell, "source": source.format_map(fields)}
            cells.append(cell)
            if "headstart:history" in cell.get("metadata", {}).get("tags", []):
                cells.extend(self._history_cells(facts["histories"]))
        template["cells"] = cells
        template["metadata"]["headstart"] = {
            **template["metadata"].get("headstart", {}),
            "model_id": facts["id"],
        }
        return template

    def _history_cells(self, histories: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cells = []
        for history in histories:
            epochs = _finite(history["epochs"])
            title = f"training {history['training']}"
            # The cell draws what its output shows, so running the card draws the curves again.
            # Python literals (repr), not JSON: a figure that was not measured is None, not null.
            source = (
                f"# Training {history['training']} on {history['dataset']!r}: loss and accuracy per epoch.\n"
                "from headstart.kernels.history_plot import plot_history\n\n"
                f"epochs = {epochs!r}\n"
                f"plot_history(epochs, {title!r});"
            )
            cells.append(
                {
                    "cell_type": "code",
                    "id": uuid.uuid4().hex[:8],
                    "metadata": {"tags": ["headstart:history-plot"]},
                    "execution_count": None,
                    "source": source,
                    "outputs": [_history_plot(epochs, title)] if epochs else [],
                }
            )
        return cells

    def _facts(self, session: Any, model: CatalogModel) -> dict[str, Any]:
        from headstart.extension.managers.models import model_public
        from headstart.extension.managers.trainings import training_public

        public = model_public(session, model)
        datasets = {d.id: d.name for d in session.exec(select(Dataset)).all()}
        made = session.exec(
            select(Training)
            .where(
                col(Training.result_model_id) == model.id, col(Training.stage).in_(["updated", "kept_both"])
            )
            .order_by(col(Training.id))
        ).all()
        trainings = [training_public(session, t) for t in made]
        parent = session.get(CatalogModel, model.parent_id) if model.parent_id else None
        if parent is None:
            # Deleting a parent clears parent_id, so a model without one may have lost its parent.
            lineage = "No parent in the catalog: an original model, or its parent was deleted."
        elif parent.public:
            version = model.parent_version
            lineage = f"Re-trained from **{_text(parent.name)}** (model {parent.id}, version {version})."
        else:
            lineage = "Re-trained from a private model."
        evaluations = session.exec(
            select(Evaluation)
            .where(col(Evaluation.model_id) == model.id, col(Evaluation.split) == "test")
            .order_by(col(Evaluation.dataset_id), col(Evaluation.model_version))
        ).all()
        owner = session.get(User, model.owner_id)
        return {
            "id": model.id,
            "name": model.name,
            "description": model.description,
            "lineage": lineage,
            "table": {
                "owner": owner.name if owner else "?",
                "kind": public.kind,
                "labels": ", ".join(model.labels or []) or "-",
                "version": public.version,
                "parameters": f"{public.params:,}",
                "size (bytes)": f"{public.size_bytes:,}",
                "architecture": public.architecture or "uploaded",
                "input": "224x224 RGB, 0-255",
            },
            "trainings": [
                {
                    "training": t.id,
                    "dataset": datasets.get(t.dataset_id, t.dataset_id),
                    "from": f"model {t.model_id} v{t.model_version}",
                    "epochs": len(t.epochs),
                    "val_accuracy": t.epochs[-1].val_accuracy if t.epochs else None,
                }
                for t in trainings
            ],
            "histories": [
                {
                    "training": t.id,
                    "dataset": datasets.get(t.dataset_id, str(t.dataset_id)),
                    "epochs": [e.model_dump() for e in t.epochs],
                }
                for t in trainings
            ],
            "scored_datasets": sorted(
                {
                    datasets[e.dataset_id]
                    for e in evaluations
                    if e.comparable and e.model_version == model.version and e.dataset_id in datasets
                }
            ),
            "evaluations": [
                {
                    "dataset": datasets.get(e.dataset_id, e.dataset_id),
                    "version": e.model_version,
                    "accuracy": e.accuracy,
                    "loss": e.loss,
                    "images": e.count,
                }
                for e in evaluations
                if e.comparable
            ],
        }
