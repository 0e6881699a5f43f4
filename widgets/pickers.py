"""Pickers for the catalog: model and dataset grids with the chosen row's details below them.

Each picker loads its list once per `refresh()` and filters it in the kernel, so typing in the search
box, flipping a filter or sorting a column answers at once, without a round trip to the service.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import HeadstartError
from headstart.kernels.schemas import DatasetPublic, ModelPublic
from headstart.widgets.base import Status, replace_options, resolve_client
from headstart.widgets.grid import Column, Table, count_text

SCOPES = ("all", "mine", "public")
KINDS: list[tuple[str, str | None]] = [
    ("any kind", None),
    ("classifiers", "classifier"),
    ("feature vectors", "feature_vector"),
]
ANY_LABELS = "any labels"
MODEL_COLUMNS = (
    Column("name"),
    Column("owner"),
    Column("kind"),
    Column("labels", "labels"),
    Column("params", "count"),
    Column("size", "megabytes"),
    Column("visibility"),
    Column("best score", "percent"),
    Column("updated", "date"),
)
DATASET_COLUMNS = (
    Column("name"),
    Column("labels", "labels"),
    Column("classes", "integer"),
    Column("images", "integer"),
    Column("added by"),
    Column("added", "date"),
)


def stacked(grid: w.Widget, details: w.Widget) -> w.VBox:
    """A grid across the notebook's width, with the chosen row's details below it."""
    grid.layout = w.Layout(width="100%", min_width="0")
    details.layout = w.Layout(min_width="0", margin="6px 0 0 0")
    return w.VBox([grid, details], layout=w.Layout(width="100%"))


def size_text(params: int, size_bytes: int) -> str:
    """A model's size as people compare them: parameters and megabytes."""
    return f"{count_text(params)} params, {size_bytes / 1_000_000:.2f} MB"


def details_table(rows: list[tuple[str, str]]) -> str:
    """Facts as a compact table of name and value, two facts to a line where the notebook is wide.

    Values are escaped, since names and labels are user text."""
    cells = "".join(
        "<div class='headstart-fact' style='display:grid;grid-template-columns:8.5em 1fr;gap:8px'>"
        f"<b style='white-space:nowrap'>{html.escape(key)}</b>"
        f"<span>{html.escape(value)}</span></div>"
        for key, value in rows
    )
    return (
        "<div class='headstart-details' style='display:grid;gap:2px 24px;font-size:12px;line-height:1.4;"
        f"grid-template-columns:repeat(auto-fill, minmax(320px, 1fr))'>{cells}</div>"
    )


def matches(query: str, *fields: str | None) -> bool:
    """Whether every word of the search query is in one of the fields (case-insensitive)."""
    text = " ".join(f for f in fields if f).lower()
    return all(word in text for word in query.lower().split())


@dataclass(frozen=True)
class Score:
    """A model's best leaderboard place: its accuracy and on which dataset."""

    accuracy: float
    dataset: str
    rank: int | None

    def __str__(self) -> str:
        return f"{self.accuracy:.1%} on {self.dataset}"


def best_scores(client: HeadstartClient, datasets: list[DatasetPublic]) -> tuple[dict[int, Score], list[str]]:
    """Each model's best ranked score across the datasets' leaderboards, and the boards that failed.

    One request per dataset and refresh: the service keeps its boards until the catalog changes.
    A board that cannot be had costs its scores, not the picker.
    """
    best: dict[int, Score] = {}
    failed: list[str] = []
    for dataset in datasets:
        try:
            rows = client.evaluations.leaderboard(dataset.name)
        except HeadstartError:
            failed.append(dataset.name)
            continue
        for row in rows:
            if row.rank is None or row.accuracy is None:
                continue
            held = best.get(row.model_id)
            if held is None or row.accuracy > held.accuracy:
                best[row.model_id] = Score(row.accuracy, dataset.name, row.rank)
    return best, failed


class ModelPicker(w.VBox):
    """The models you may see, searchable and filtered by owner, kind and label set; `.value` is the
    chosen model's id."""

    def __init__(
        self,
        client: HeadstartClient | None = None,
        *,
        scope: str = "all",
        kind: str | None = None,
        same_type_as: str | None = None,
    ) -> None:
        self.client = resolve_client(client)
        self.search = w.Text(placeholder="search name, owner, labels", description="search")
        self.scope = w.ToggleButtons(options=list(SCOPES), value=scope)
        # By index: a Dropdown given the value None shows a blank, not its "any" option.
        kinds = [value for _, value in KINDS]
        if kind not in kinds:
            raise ValueError(f"unknown kind {kind!r}; choose classifier or feature_vector")
        self.kind = w.Dropdown(options=KINDS, index=kinds.index(kind), description="kind")
        self.same_type = w.Dropdown(
            options=[(ANY_LABELS, None)],
            index=0,
            description="same type as",
            style={"description_width": "auto"},
        )
        self.grid = Table(MODEL_COLUMNS, empty="no models match", max_height="300px")
        self.details = w.HTML()
        self.status = Status()
        self.models: list[ModelPublic] = []
        self._all: list[ModelPublic] = []
        self._datasets: dict[str, DatasetPublic] = {}
        self._scores: dict[int, Score] = {}
        self._me: str | None = None
        super().__init__(
            [
                w.HBox([self.search, self.scope], layout=w.Layout(flex_flow="row wrap")),
                w.HBox([self.kind, self.same_type], layout=w.Layout(flex_flow="row wrap")),
                stacked(self.grid, self.details),
                self.status,
            ]
        )
        for control in (self.search, self.scope, self.kind, self.same_type):
            control.observe(lambda _: self._apply(), names="value")
        self.grid.observe(lambda _: self._show_details(), names="selected")
        self.refresh()
        if same_type_as is not None:
            self.same_type.value = same_type_as

    @property
    def value(self) -> int | None:
        return self.grid.value  # type: ignore[return-value]

    @value.setter
    def value(self, model_id: int | None) -> None:
        self.grid.value = model_id

    @property
    def selected(self) -> ModelPublic | None:
        """The chosen model as last loaded, or None."""
        return next((m for m in self._all if m.id == self.value), None)

    def refresh(self) -> None:
        """Load the models, datasets and leaderboard scores again from the service."""
        try:
            if self._me is None:
                self._me = self.client.me()
            models = self.client.models.list()
            datasets = self.client.datasets.list()
            scores, failed = best_scores(self.client, datasets)
        except HeadstartError as error:
            self.status.error(error)
            return
        self._all = models
        self._datasets = {d.name: d for d in datasets}
        self._scores = scores
        replace_options(self.same_type, [(ANY_LABELS, None)] + [(d.name, d.name) for d in datasets])
        self._apply()
        if failed:
            self.status.error(f"no leaderboard scores for {html.escape(', '.join(failed))}")
        else:
            self.status.ok(f"{len(models)} models")

    def _keeps(self, model: ModelPublic) -> bool:
        if self.scope.value == "mine" and model.owner != self._me:
            return False
        if self.scope.value == "public" and not model.public:
            return False
        if self.kind.value is not None and model.kind != self.kind.value:
            return False
        dataset = self._datasets.get(self.same_type.value) if self.same_type.value else None
        if dataset is not None and (
            model.kind != "classifier" or set(model.labels or []) != set(dataset.labels)
        ):
            return False
        return matches(
            self.search.value,
            model.name,
            model.owner,
            model.description,
            model.architecture,
            *(model.labels or []),
        )

    def _apply(self) -> None:
        self.models = [m for m in self._all if self._keeps(m)]
        self.grid.show([(m.id, self._row(m)) for m in self.models])
        self._show_details()

    def _row(self, model: ModelPublic) -> list:
        score = self._scores.get(model.id)
        return [
            model.name,
            model.owner,
            model.kind.replace("_", " "),
            model.labels or [],
            model.params,
            model.size_bytes,
            "public" if model.public else "private",
            score.accuracy if score else None,
            model.updated_at,
        ]

    def _show_details(self) -> None:
        model = self.selected
        if model is None:
            self.details.value = "<i>pick a model to see its details</i>"
            return
        score = self._scores.get(model.id)
        rows = [
            ("name", model.name),
            ("id", str(model.id)),
            ("owner", model.owner),
            ("kind", model.kind.replace("_", " ")),
            ("labels", ", ".join(model.labels) if model.labels else "none (feature vector)"),
            ("version", str(model.version)),
            ("size", size_text(model.params, model.size_bytes)),
            ("visibility", "public" if model.public else "private"),
            ("architecture", model.architecture or "uploaded"),
            ("parent", f"model {model.parent_id} v{model.parent_version}" if model.parent_id else "none"),
            ("best score", f"{score} (rank {score.rank})" if score else "not ranked yet"),
            ("description", model.description or "-"),
        ]
        self.details.value = details_table(rows)


class DatasetPicker(w.VBox):
    """The catalog's datasets, searchable; `.value` is the chosen dataset's name."""

    def __init__(self, client: HeadstartClient | None = None) -> None:
        self.client = resolve_client(client)
        self.search = w.Text(placeholder="search name, labels", description="search")
        self.grid = Table(DATASET_COLUMNS, empty="no datasets match", max_height="240px")
        self.details = w.HTML()
        self.status = Status()
        self.datasets: list[DatasetPublic] = []
        self._all: list[DatasetPublic] = []
        super().__init__([self.search, stacked(self.grid, self.details), self.status])
        self.search.observe(lambda _: self._apply(), names="value")
        self.grid.observe(lambda _: self._show_details(), names="selected")
        self.refresh()

    @property
    def value(self) -> str | None:
        return self.grid.value  # type: ignore[return-value]

    @value.setter
    def value(self, name: str | None) -> None:
        self.grid.value = name

    @property
    def selected(self) -> DatasetPublic | None:
        """The chosen dataset as last loaded, or None."""
        return next((d for d in self._all if d.name == self.value), None)

    def refresh(self) -> None:
        """Load the datasets again from the service."""
        try:
            self._all = self.client.datasets.list()
        except HeadstartError as error:
            self.status.error(error)
            return
        self._apply()
        self.status.ok(f"{len(self._all)} datasets")

    def _apply(self) -> None:
        query = self.search.value
        self.datasets = [
            d for d in self._all if matches(query, d.name, d.description, d.created_by, *d.labels)
        ]
        self.grid.show([(d.name, self._row(d)) for d in self.datasets])
        self._show_details()

    @staticmethod
    def _row(dataset: DatasetPublic) -> list:
        images = sum(dataset.counts.values()) if dataset.counts else 0
        return [
            dataset.name,
            dataset.labels,
            len(dataset.labels),
            images,
            dataset.created_by,
            dataset.created_at,
        ]

    def _show_details(self) -> None:
        dataset = self.selected
        if dataset is None:
            self.details.value = "<i>pick a dataset to see its details</i>"
            return
        rows: list[tuple[str, str]] = [
            ("name", dataset.name),
            ("id", str(dataset.id)),
            ("labels", f"{len(dataset.labels)}: {', '.join(dataset.labels)}"),
            *((f"{split} images", str(count)) for split, count in split_counts(dataset)),
            ("resize policy", dataset.resize_policy),
            ("split policy", dataset.split_policy),
            ("skipped files", str(len(dataset.skipped or []))),
            ("added by", dataset.created_by),
            ("description", dataset.description or "-"),
        ]
        self.details.value = details_table(rows)


def split_counts(dataset: DatasetPublic) -> list[tuple[str, int]]:
    """The dataset's image counts per split, train, val and test first."""
    counts = dataset.counts or {}
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(counts.items(), key=lambda item: (order.get(item[0], 3), item[0]))
