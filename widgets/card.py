"""`ModelCard`: everything about one model in one place, and its owner's actions on it.

Facts, lineage (the models it came from and the models re-trained from it), the trainings that made
its versions with their curves, and its leaderboard places. Publish, rename, download and delete
appear only for the owner, and delete asks for a confirmation first: it takes the model's
trainings and evaluations with it.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import NotFound
from headstart.kernels.schemas import LeaderboardRow, ModelPublic, TrainingPublic
from headstart.widgets.base import MUTED, Status, resolve_client
from headstart.widgets.curves import EpochCurves
from headstart.widgets.grid import Column, Table
from headstart.widgets.leaderboard import training_series
from headstart.widgets.pickers import details_table

TRAINING_COLUMNS = (
    Column("training", "integer"),
    Column("dataset"),
    Column("from version", "integer"),
    Column("status"),
    Column("head"),
    Column("epochs", "integer"),
    Column("accuracy", "decimal"),
    Column("val acc", "decimal"),
    Column("started", "date"),
)
# Deep enough for any real re-training chain, and a guard against a cycle in bad data.
LINEAGE_DEPTH = 32


def bytes_text(size: int) -> str:
    """Bytes as a person reads them: 1.2 MB, not 1234567."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _facts_html(model: ModelPublic) -> str:
    labels = ", ".join(model.labels or []) or "none (a feature vector)"
    parent = f"model {model.parent_id} v{model.parent_version}" if model.parent_id is not None else "none"
    return details_table(
        [
            ("name", model.name),
            ("owner", model.owner),
            ("kind", model.kind),
            ("labels", labels),
            ("params", f"{model.params:,}"),
            ("size", bytes_text(model.size_bytes)),
            ("visibility", "public" if model.public else "private"),
            ("version", str(model.version)),
            ("architecture", model.architecture or "uploaded"),
            ("parent", parent),
            ("description", model.description or "-"),
            ("updated", model.updated_at.strftime("%Y-%m-%d %H:%M")),
        ]
    )


class ModelCard(w.VBox):
    """One model's facts, lineage, trainings and places; its owner also gets the actions on it."""

    def __init__(self, model_id: int, client: HeadstartClient | None = None) -> None:
        self.client = resolve_client(client)
        self.catalog_id = int(model_id)
        self.status = Status()
        self.title = w.HTML()
        self.facts = w.HTML()
        self.lineage = w.HTML()
        self.training_table = Table(
            TRAINING_COLUMNS,
            empty="no trainings: this version came from the zoo or an upload",
            max_height="240px",
        )
        self.training_table.sort_by("training", descending=True)
        self.training_table.observe(lambda _: self._show_curves(), names="selected")
        self.curves = EpochCurves(
            "training curves", empty="no training curves: this model was not re-trained here"
        )
        self.trainings = w.VBox([self.training_table, self.curves])
        self.places = w.HTML("<i>not looked up yet: each leaderboard may score every model you see</i>")
        self.places_button = w.Button(
            description="Find leaderboard places", icon="trophy", layout=w.Layout(width="auto")
        )
        self.places_button.on_click(lambda _: self.load_places())

        self.model: ModelPublic | None = None
        self.parents: list[ModelPublic] = []
        self.child_models: list[ModelPublic] = []
        self.history: list[TrainingPublic] = []
        self.ranks: dict[str, LeaderboardRow] = {}
        self.is_owner = False
        self.deleted = False

        # The owner's actions; built for everyone, shown only to the owner.
        self.publish_button = w.Button(description="Publish", icon="globe")
        self.unpublish_button = w.Button(description="Make private", icon="lock")
        self.rename = w.Text(description="name")
        self.rename_button = w.Button(description="Rename", icon="pencil")
        self.download_path = w.Text(value=".", description="save to", placeholder="folder or file.keras")
        self.download_button = w.Button(description="Download", icon="download")
        self.confirm_delete = w.Checkbox(
            value=False, description="yes, delete it with its trainings and evaluations", indent=False
        )
        self.delete_button = w.Button(
            description="Delete", icon="trash", button_style="danger", disabled=True
        )
        self.publish_button.on_click(lambda _: self.set_public(True))
        self.unpublish_button.on_click(lambda _: self.set_public(False))
        self.rename_button.on_click(lambda _: self.rename_to(self.rename.value))
        self.download_button.on_click(lambda _: self.download(Path(self.download_path.value or ".")))
        self.confirm_delete.observe(self._confirming, names="value")
        self.delete_button.on_click(lambda _: self.delete())
        self.actions = w.VBox(
            layout=w.Layout(border="1px solid var(--jp-border-color2, #ddd)", padding="4px")
        )

        section = "<h4 style='margin:10px 0 2px'>{}</h4>".format
        super().__init__(
            [
                self.title,
                self.facts,
                w.HTML(section("Lineage")),
                self.lineage,
                w.HTML(section("Trainings")),
                self.trainings,
                w.HTML(section("Leaderboard places")),
                w.HBox([self.places_button]),
                self.places,
                self.actions,
                self.status,
            ]
        )
        self.refresh()

    # --- showing ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the model, its relatives and its trainings again."""
        try:
            model = self.client.models.get(self.catalog_id)
            me = self.client.me()
            everyone = self.client.models.list()
            datasets = {d.id: d.name for d in self.client.datasets.list()}
            history = self.client.trainings.history(self.catalog_id)
            # Your own trainings of this model also show the runs that made its children or were
            # discarded; the history alone has only those that made this model's versions.
            mine = self.client.trainings.list(model_id=self.catalog_id) if me == model.owner else []
        except Exception as error:
            self.status.error(error)
            return
        self.model = model
        self.is_owner = me == model.owner
        self._show_model()
        self._show_lineage(everyone)
        known = {t.id for t in history}
        self.history = history + [t for t in mine if t.id not in known]
        self._show_trainings(datasets)
        self.actions.children = self._owner_actions() if self.is_owner else ()
        self.actions.layout.display = None if self.is_owner else "none"

    def _show_model(self) -> None:
        assert self.model is not None
        model = self.model
        badge = "public" if model.public else "private"
        self.title.value = (
            f"<h3 style='margin:4px 0'>{html.escape(model.name)} <small style='{MUTED}'>"
            f"#{model.id} · v{model.version} · {badge}</small></h3>"
        )
        self.facts.value = _facts_html(model)
        self.rename.value = model.name
        self.publish_button.disabled = model.public
        self.unpublish_button.disabled = not model.public

    def _show_lineage(self, everyone: list[ModelPublic]) -> None:
        assert self.model is not None
        parents: list[ModelPublic] = []
        hidden_parent: int | None = None
        seen = {self.model.id}
        parent_id = self.model.parent_id
        while parent_id is not None and parent_id not in seen and len(parents) < LINEAGE_DEPTH:
            try:
                parent = self.client.models.get(parent_id)
            except NotFound:
                # A private parent of someone else's, or a deleted one: say so rather than invent it.
                hidden_parent = parent_id
                break
            parents.append(parent)
            seen.add(parent.id)
            parent_id = parent.parent_id
        children_of: dict[int, list[ModelPublic]] = defaultdict(list)
        for other in everyone:
            if other.parent_id is not None:
                children_of[other.parent_id].append(other)
        self.parents = parents
        self.child_models = children_of.get(self.model.id, [])

        def item(model: ModelPublic, current: bool = False) -> str:
            name = html.escape(model.name)
            text = f"<b>{name}</b> (this model)" if current else name
            facts = f"#{model.id} v{model.version} · {html.escape(model.owner)}"
            return f"{text} <span style='{MUTED}'>{facts}</span>"

        def descendants(model: ModelPublic, depth: int) -> str:
            kids = children_of.get(model.id, [])
            if not kids or depth >= LINEAGE_DEPTH:
                return ""
            return (
                "<ul>"
                + "".join(
                    f"<li>{item(kid)} <span style='{MUTED}'>from v{kid.parent_version}</span>"
                    f"{descendants(kid, depth + 1)}</li>"
                    for kid in kids
                    if kid.id not in seen
                )
                + "</ul>"
            )

        tree = f"<li>{item(self.model, current=True)}{descendants(self.model, 0)}</li>"
        for parent in parents:
            tree = f"<li>{item(parent)}<ul>{tree}</ul></li>"
        if hidden_parent is not None:
            tree = f"<li><i>model {hidden_parent}, which you cannot see</i><ul>{tree}</ul></li>"
        self.lineage.value = f"<ul class='headstart-lineage' style='font-size:13px'>{tree}</ul>"

    def _show_trainings(self, datasets: dict[int, str]) -> None:
        rows = []
        for t in self.history:
            last = max(t.epochs, key=lambda e: e.epoch) if t.epochs else None
            rows.append(
                (
                    t.id,
                    [
                        t.id,
                        datasets.get(t.dataset_id, str(t.dataset_id)),
                        t.model_version,
                        t.status,
                        t.head,
                        len(t.epochs),
                        last.accuracy if last else None,
                        last.val_accuracy if last else None,
                        t.created_at,
                    ],
                )
            )
        self.training_table.show(rows)
        self._show_curves()

    def _show_curves(self) -> None:
        """Every training's curves, or only the selected one's."""
        name = self.model.name if self.model else str(self.catalog_id)
        chosen = [t for t in self.history if t.id == self.training_table.value] or self.history
        self.curves.show(training_series(name, chosen))

    def load_places(self) -> dict[str, LeaderboardRow]:
        """Look the model up on every dataset's leaderboard; returns its row per dataset name.

        On demand, not on opening the card: a leaderboard scores every model version you may see
        that was not scored yet, which a card opened in passing should not set off.
        """
        self.status.ok("looking up leaderboards…")
        places: dict[str, LeaderboardRow] = {}
        ranked: dict[str, int] = {}
        try:
            for dataset in self.client.datasets.list():
                board = self.client.evaluations.leaderboard(dataset.id)
                for row in board:
                    if row.model_id == self.catalog_id:
                        places[dataset.name] = row
                        ranked[dataset.name] = sum(1 for other in board if other.rank is not None)
        except Exception as error:
            self.status.error(error)
            return places
        self.ranks = places
        if not places:
            self.places.value = "<i>on no leaderboard</i>"
        else:
            items = "".join(
                f"<li><b>{html.escape(name)}</b>: "
                + (f"#{row.rank} of {ranked[name]}" if row.rank is not None else "not ranked")
                + (f", accuracy {row.accuracy:.3f}" if row.accuracy is not None else "")
                + f" (v{row.version}) <span style='{MUTED}'>{html.escape(row.note)}</span></li>"
                for name, row in places.items()
            )
            self.places.value = f"<ul style='font-size:13px'>{items}</ul>"
        self.status.ok(f"on {len(places)} leaderboards")
        return places

    # --- the owner's actions ----------------------------------------------------------------------

    def _owner_actions(self) -> tuple[w.Widget, ...]:
        return (
            w.HTML("<b>Owner's actions</b>"),
            w.HBox([self.publish_button, self.unpublish_button]),
            w.HBox([self.rename, self.rename_button]),
            w.HBox([self.download_path, self.download_button]),
            w.HBox([self.confirm_delete, self.delete_button]),
        )

    def _changed(self, model: ModelPublic, what: str) -> None:
        self.model = model
        self._show_model()
        self.status.ok(what)

    def set_public(self, public: bool) -> ModelPublic | None:
        """Publish the model, or make it private again (then only you can see it)."""
        try:
            model = self.client.models.update(self.catalog_id, public=public)
        except Exception as error:
            self.status.error(error)
            return None
        self._changed(model, "published" if public else "made private")
        return model

    def rename_to(self, name: str) -> ModelPublic | None:
        """Give the model a new name; its id, versions and lineage stay."""
        try:
            model = self.client.models.update(self.catalog_id, name=name)
        except Exception as error:
            self.status.error(error)
            return None
        self._changed(model, f"renamed to {model.name}")
        return model

    def download(self, dest: Path | str) -> Path | None:
        """Write the current version as a `.keras` file at `dest`, or inside it when it is a folder."""
        try:
            path = self.client.models.download(self.catalog_id, Path(dest))
        except Exception as error:
            self.status.error(error)
            return None
        self.status.ok(f"saved to {html.escape(str(path))}")
        return path

    def _confirming(self, change: dict[str, Any]) -> None:
        self.delete_button.disabled = self.deleted or not change["new"]

    def delete(self) -> bool:
        """Delete the model, once `confirm_delete` is ticked; answers whether it was deleted."""
        if not self.confirm_delete.value:
            self.status.error(
                "tick the confirmation first: deleting also removes its trainings and evaluations"
            )
            return False
        try:
            self.client.models.delete(self.catalog_id)
        except Exception as error:
            self.status.error(error)
            return False
        self.deleted = True
        for action in (
            self.publish_button,
            self.unpublish_button,
            self.rename_button,
            self.download_button,
            self.delete_button,
            self.confirm_delete,
        ):
            action.disabled = True
        self.status.ok(f"deleted {html.escape(self.model.name if self.model else str(self.catalog_id))}")
        return True
