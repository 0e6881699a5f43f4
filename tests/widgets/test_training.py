"""TrainingSetup and TrainingDashboard against a real catalog service whose jobs run on Dask.

The dashboards are built with `follow=False` and polled by hand with `refresh()`, except one test
that lets the dashboard follow the training on an asyncio loop, as it does in a kernel.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import TrainingConfig
from headstart.widgets.training import TrainingDashboard, TrainingSetup
from tests.widgets.conftest import Service

# ~0.5 s an epoch on the tiny model: slow enough to watch the curves grow and to cancel mid-run.
SLOW = {"batch_size": 8, "fine_tune_layers": "all"}


def poll_until(
    dashboard: TrainingDashboard, done: Callable[[TrainingDashboard], bool], timeout: float = 90.0
) -> None:
    """Refresh the dashboard by hand, as a kernel's loop would, until `done` or the timeout."""
    deadline = time.monotonic() + timeout
    while not done(dashboard):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; phase {dashboard.phase.value!r}, {dashboard.status.value}")
        time.sleep(0.2)
        dashboard.refresh()


def ended(dashboard: TrainingDashboard) -> bool:
    return not dashboard.running


def setup_for(client: HeadstartClient, model_id: int, dataset: str = "shapes") -> TrainingSetup:
    setup = TrainingSetup(client)
    setup.models.value = model_id
    setup.datasets.value = dataset
    return setup


@dataclass
class Watched:
    """A training started from a TrainingSetup and followed to its candidate, with what was seen."""

    setup: TrainingSetup
    dashboard: TrainingDashboard
    points: list[int] = field(default_factory=list)  # the loss line's length at each change
    phases: list[str] = field(default_factory=list)
    decision_shown: list[str] = field(default_factory=list)  # the buttons' display at each poll


@pytest.fixture(scope="module")
def module_client(service: Service) -> Iterator[HeadstartClient]:
    client = service.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def watched(service: Service, module_client: HeadstartClient) -> Watched:
    setup = setup_for(module_client, service.models["bob-public"])
    setup.epochs.value = 5
    setup.batch_size.value = SLOW["batch_size"]
    setup.fine_tune_layers.value = SLOW["fine_tune_layers"]
    dashboard = setup.start()
    seen = Watched(setup, dashboard)
    dashboard.lines["loss"].observe(lambda change: seen.points.append(len(change["new"])), names="x")
    dashboard.phase.observe(lambda change: seen.phases.append(change["new"]), names="value")

    def look(d: TrainingDashboard) -> bool:
        seen.decision_shown.append(d.decision.layout.display)
        return ended(d)

    poll_until(dashboard, look)
    return seen


# --- the setup ------------------------------------------------------------------------------


def test_plan_keeps_the_head_when_the_labels_match(service: Service, client: HeadstartClient) -> None:
    setup = TrainingSetup(client)
    assert "pick a model and a dataset" in setup.plan.value
    setup.models.value = service.models["bob-public"]
    assert "pick a dataset" in setup.plan.value
    setup.datasets.value = "shapes"
    plan = setup.plan.value
    assert "the head will be kept" in plan and "replaced" not in plan
    assert "body frozen" in plan and "features cached:" in plan
    assert "bob-public" in plan and "shapes" in plan

    setup.fine_tune_layers.value = "all"
    assert "whole body fine-tuned" in setup.plan.value
    assert "features cached: no" in setup.plan.value
    setup.fine_tune_layers.value = 2
    assert "last 2 body layers fine-tuned" in setup.plan.value


def test_plan_gives_a_feature_vector_a_new_head(service: Service, client: HeadstartClient) -> None:
    setup = setup_for(client, service.models["alice-vector"])
    assert "the head will be replaced: no labels -&gt; 3 labels" in setup.plan.value


def test_plan_knows_features_are_cached_after_a_frozen_training(
    service: Service, client: HeadstartClient
) -> None:
    model = service.models["alice-vector"]
    client.trainings.start(model, "shapes", TrainingConfig(epochs=1), timeout=90)
    assert "features cached: yes" in setup_for(client, model).plan.value


def test_the_widgets_start_at_the_training_configs_defaults(client: HeadstartClient) -> None:
    assert TrainingSetup(client).config() == TrainingConfig()


def test_config_comes_from_the_widgets(client: HeadstartClient) -> None:
    setup = TrainingSetup(client)
    setup.optimizer.value = "sgd"
    setup.learning_rate.value = 0.01
    setup.loss.value = "categorical_crossentropy"
    setup.epochs.value = 7
    setup.batch_size.value = 16
    setup.fine_tune_layers.value = "all"
    setup.early_stopping.value = 3
    setup.device.value = "GPU"
    assert setup.config() == TrainingConfig(
        optimizer="sgd",
        learning_rate=0.01,
        loss="categorical_crossentropy",
        epochs=7,
        batch_size=16,
        fine_tune_layers="all",
        early_stopping_patience=3,
        gpu=True,
    )
    setup.early_stopping.value = None
    setup.device.value = "CPU"
    assert setup.config().early_stopping_patience is None and setup.config().gpu is False


def test_start_without_a_choice_says_what_is_missing(service: Service, client: HeadstartClient) -> None:
    setup = TrainingSetup(client)
    with pytest.raises(Invalid, match="pick a model and a dataset"):
        setup.start()
    assert "pick a model and a dataset" in setup.status.value
    assert setup.start_button.disabled  # nothing to start yet
    setup.models.value = service.models["bob-public"]
    assert setup.start_button.disabled
    setup.start_button.click()  # even so, a click shows the error and raises nothing
    assert "pick a dataset before starting" in setup.status.value
    assert setup.output.children == ()
    setup.datasets.value = "shapes"
    assert not setup.start_button.disabled


def test_the_gpu_toggle_on_a_cluster_without_a_gpu_worker_says_why(
    service: Service, client: HeadstartClient
) -> None:
    """The session's cluster has no worker with GPU=1: the service refuses, the status says why."""
    setup = setup_for(client, service.models["bob-public"])
    setup.device.value = "GPU"
    with pytest.raises(Invalid, match="no worker of the cluster offers GPU=1"):
        setup.start()
    assert "or train on the CPU" in setup.status.value and setup.output.children == ()
    assert not [t for t in client.trainings.list() if t.config["gpu"]]


def test_a_queued_jobs_phase_says_what_it_waits_for() -> None:
    from datetime import UTC, datetime

    from headstart.kernels.schemas import JobPublic, TrainingPublic
    from headstart.widgets.training import phase_text

    moment = datetime.now(UTC)
    job = JobPublic(
        id=1,
        key="headstart-train-1-0",
        kind="train",
        created_at=moment,
        started_at=None,
        finished_at=None,
        phase="waiting for a worker with GPU=1",
    )
    training = TrainingPublic(
        id=1,
        owner="alice",
        created_at=moment,
        finished_at=None,
        model_id=1,
        model_version=1,
        dataset_id=1,
        config={"epochs": 3},
        job=job,
    )
    assert phase_text(training, 0) == "queued: waiting for a worker with GPU=1"
    assert (
        phase_text(training.model_copy(update={"job": job.model_copy(update={"phase": None})}), 0) == "queued"
    )


# --- the dashboard --------------------------------------------------------------------------


def test_start_shows_a_dashboard_below_the_setup(watched: Watched) -> None:
    assert watched.setup.output.children == (watched.dashboard,)
    assert watched.setup.dashboard is watched.dashboard
    assert f"training {watched.dashboard.training_id} started" in watched.setup.status.value
    assert "bob-public" in watched.dashboard.title.value


def test_curves_grow_as_epochs_arrive(watched: Watched) -> None:
    dashboard = watched.dashboard
    assert [e.epoch for e in dashboard.epochs] == [1, 2, 3, 4, 5]
    for name in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert list(dashboard.lines[name].x) == [1, 2, 3, 4, 5], name
        assert len(dashboard.lines[name].y) == 5
    assert list(dashboard.lines["loss"].y) == pytest.approx([e.loss for e in dashboard.epochs])
    # The epoch axes tick at whole epochs, not at bqplot's fractional defaults.
    assert all(list(c.x_axis.tick_values) == [1, 2, 3, 4, 5] for c in dashboard.curves.values())
    # The curve gained points while the training ran, never lost any, and ended whole.
    assert any(0 < n < 5 for n in watched.points), watched.points
    assert watched.points == sorted(watched.points) and watched.points[-1] == 5


def test_phase_and_progress_follow_the_job(watched: Watched) -> None:
    dashboard = watched.dashboard
    assert any(p.startswith("epoch ") and p.endswith(" of 5") for p in watched.phases), watched.phases
    assert dashboard.phase.value == "candidate"
    assert dashboard.progress.value == dashboard.progress.max == 5
    assert "succeeded" in dashboard.state.value
    # A finished training has nothing to cancel: the button is gone, the decision buttons are up.
    assert dashboard.cancel_button.layout.display == "none"
    assert dashboard.decision.layout.display == "flex"


def test_the_candidate_shows_the_decision_buttons_and_keep_both_makes_a_model(
    service: Service, watched: Watched, module_client: HeadstartClient
) -> None:
    dashboard = watched.dashboard
    assert watched.decision_shown[0] == "none"  # hidden while it trained
    assert dashboard.decision.layout.display == "flex"
    name = f"kept-{uuid.uuid4().hex[:8]}"
    dashboard.keep_name.value = name
    dashboard.keep_both_button.click()
    assert f"kept both: new model {name}" in dashboard.status.value
    assert dashboard.phase.value == "kept both"
    assert dashboard.decision.layout.display == "none"
    made = [m for m in module_client.models.list(mine=True) if m.name == name]
    assert len(made) == 1 and made[0].parent_id == service.models["bob-public"]
    assert module_client.trainings.get(dashboard.training_id).status == "kept_both"


def test_a_new_dashboard_reattaches_to_a_finished_training(
    watched: Watched, module_client: HeadstartClient
) -> None:
    again = TrainingDashboard(watched.dashboard.training_id, module_client, follow=False)
    assert [e.epoch for e in again.epochs] == [1, 2, 3, 4, 5]
    assert list(again.lines["val_accuracy"].x) == [1, 2, 3, 4, 5]
    assert again.phase.value == watched.dashboard.phase.value
    assert again.progress.value == again.progress.max
    # Nothing more to fetch: a refresh asks only after the last epoch and changes nothing.
    assert again.refresh() is False
    assert again.training is not None and again.training.epochs == []
    assert len(again.epochs) == 5


def test_follows_on_the_event_loop_then_discard(service: Service, client: HeadstartClient) -> None:
    model = service.models["alice-vector"]
    # The whole model trains in Keras (seconds), so the training is still running when the dashboard
    # attaches: a frozen body's head on cached features can end before the next request.
    config = TrainingConfig(epochs=2, fine_tune_layers="all")
    training = client.trainings.begin(model, "shapes", config)
    before = {m.id for m in client.models.list()}

    async def follow() -> TrainingDashboard:
        dashboard = TrainingDashboard(training.id, client, poll=0.2)
        assert dashboard.task is not None  # polling was scheduled on this loop
        await asyncio.wait_for(dashboard.task, 90)
        return dashboard

    dashboard = asyncio.run(follow())
    assert dashboard.phase.value == "candidate"
    assert [e.epoch for e in dashboard.epochs] == [1, 2]
    assert list(dashboard.lines["accuracy"].x) == [1, 2]
    dashboard.discard_button.click()
    assert "discarded" in dashboard.status.value
    assert dashboard.phase.value == "discarded"
    assert client.trainings.get(training.id).status == "discarded"
    assert {m.id for m in client.models.list()} == before


def test_update_makes_the_candidate_the_next_version(client: HeadstartClient) -> None:
    model = client.models.create(
        name=f"to-update-{uuid.uuid4().hex[:8]}",
        architecture="small_cnn",
        labels=["circle", "square", "triangle"],
        weights=None,
        options={"filters": 2},
    )
    try:
        training = client.trainings.begin(model.id, "shapes", TrainingConfig(epochs=1))
        dashboard = TrainingDashboard(training.id, client, follow=False)
        poll_until(dashboard, ended)
        dashboard.update_button.click()
        assert f"updated {model.name} to version 2" in dashboard.status.value
        assert dashboard.phase.value == "updated the model"
        assert client.models.get(model.id).version == 2
    finally:
        client.models.delete(model.id)


def test_cancel_ends_cancelled_and_keeps_the_epochs(service: Service, client: HeadstartClient) -> None:
    training = client.trainings.begin(
        service.models["bob-public"], "shapes", TrainingConfig(epochs=40, **SLOW)
    )
    dashboard = TrainingDashboard(training.id, client, follow=False)
    poll_until(dashboard, lambda d: len(d.epochs) >= 1)
    assert dashboard.cancel_button.layout.display is None and not dashboard.cancel_button.disabled
    dashboard.cancel_button.click()
    assert "asked the training to stop" in dashboard.status.value
    assert dashboard.cancel_button.disabled  # waiting for the stop, it cannot be pressed twice
    poll_until(dashboard, ended)
    assert dashboard.phase.value == "cancelled"
    assert dashboard.cancel_button.layout.display == "none"
    assert 1 <= len(dashboard.epochs) < 40
    assert len(dashboard.lines["loss"].x) == len(dashboard.epochs)
    assert dashboard.progress.bar_style == "warning"
    assert dashboard.decision.layout.display == "none"
    assert client.trainings.get(training.id).status == "cancelled"


def test_an_unknown_training_shows_an_error_not_a_traceback(client: HeadstartClient) -> None:
    dashboard = TrainingDashboard(10**9, client)
    assert "headstart-error" in dashboard.status.value
    assert dashboard.epochs == [] and dashboard.refresh() is False
