"""`HeadstartClient.trainings`: the remote twin of the catalog's TrainingManager.

The service runs each training in the background, so `start` begins one and follows it by polling,
as the widgets do; the training goes on if the kernel stops following it.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable

from pydantic import BaseModel

from headstart.kernels.client.connection import Connection, parse, parse_list, query
from headstart.kernels.errors import HeadstartError, error_class
from headstart.kernels.schemas import (
    Decision,
    DecisionRequest,
    EpochPublic,
    ModelPublic,
    TrainingConfig,
    TrainingCreate,
    TrainingPublic,
    build,
    check_choice,
)


class DecisionResult(BaseModel):
    """The answer to a decision, as docs/api.md gives it."""

    training: TrainingPublic
    model: ModelPublic | None


class RemoteTrainings:
    """Starts and follows trainings in a remote catalog, and sends the owner's decisions."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def begin(
        self, model_id: int, dataset: int | str, config: TrainingConfig | None = None
    ) -> TrainingPublic:
        """Start a training of a model's current version on a dataset and return it while it runs."""
        body = build(TrainingCreate, model_id=model_id, dataset=dataset, config=config or TrainingConfig())
        response = self._connection.request("POST", "headstart/trainings", json=body.model_dump(mode="json"))
        return parse(response, TrainingPublic)

    def start(
        self,
        model_id: int,
        dataset: int | str,
        config: TrainingConfig | None = None,
        *,
        on_epoch: Callable[[dict], None] | None = None,
        on_features: Callable[[int, int], None] | None = None,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> TrainingPublic:
        """Train a copy of a model on a dataset and wait for its candidate, like the local catalog.

        `on_epoch` gets each epoch's figures once, in order, as they appear (a retried job's
        attempt starts over from epoch 1); each poll asks only for the epochs after the last one
        seen. `on_features(done, total)` follows the body's feature pass, as the training's job
        reports it. A failed training raises its error; a cancelled one is returned. The training
        returned holds all its epochs. `timeout` (seconds) stops the waiting, not the training.
        """
        training = self.begin(model_id, dataset, config)
        follower = TrainingFollower(self, training.id)
        deadline = None if timeout is None else time.monotonic() + timeout
        features = (0, 0)
        while True:
            training, fresh, _ = follower.poll()
            for epoch in fresh:
                if on_epoch is not None:
                    on_epoch(epoch.model_dump())
            job = training.job
            if on_features and job and job.phase == "features" and (job.done, job.total) != features:
                features = (job.done, job.total)
                on_features(*features)
            if training.status != "running":
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise HeadstartError(
                    f"training {training.id} is still running after {timeout:g} s; it goes on in the "
                    f"catalog, so follow it with trainings.get({training.id})",
                    detail=training,
                )
            time.sleep(poll)
        training = self.get(training.id)
        if training.status == "failed":
            error = (training.job.error if training.job else None) or {}
            raise error_class(error.get("error"))(
                training.error or f"training {training.id} failed", detail=training
            )
        return training

    def get(self, training_id: int, *, since: int = 0) -> TrainingPublic:
        """A training you may see, with its job's state and its epochs after epoch `since`."""
        response = self._connection.request(
            "GET", f"headstart/trainings/{int(training_id)}", params=query(since=since or None)
        )
        return parse(response, TrainingPublic)

    def list(self, *, model_id: int | None = None) -> builtins.list[TrainingPublic]:
        """Your trainings, oldest first, optionally of one model."""
        response = self._connection.request("GET", "headstart/trainings", params=query(model_id=model_id))
        return parse_list(response, TrainingPublic)

    def history(self, model_id: int) -> builtins.list[TrainingPublic]:
        """The trainings that made the versions of a model you may see: its lineage."""
        response = self._connection.request("GET", f"headstart/models/{int(model_id)}/trainings")
        return parse_list(response, TrainingPublic)

    def decide(
        self, training_id: int, decision: Decision | str, *, name: str | None = None
    ) -> ModelPublic | None:
        """Carry out the decision on a candidate; returns the model it updated or created, if any."""
        check_choice(decision, Decision, "decision")
        body = build(DecisionRequest, decision=decision, name=name)
        response = self._connection.request(
            "POST",
            f"headstart/trainings/{int(training_id)}/decision",
            json=body.model_dump(mode="json", exclude_none=True),
        )
        return parse(response, DecisionResult).model

    def cancel(self, training_id: int) -> TrainingPublic:
        """Ask a running training to stop after its current epoch; it ends as `cancelled`."""
        response = self._connection.request("POST", f"headstart/trainings/{int(training_id)}/cancel")
        return parse(response, TrainingPublic)


class TrainingFollower:
    """One training as its polls show it: every epoch held once, in order.

    Each poll asks only for the epochs after the last one held. When the training's job starts a
    new attempt (a worker died and the job was retried), the service drops the old attempt's epochs,
    so the follower drops its own and fetches the new attempt's from the start.
    """

    def __init__(self, trainings: RemoteTrainings, training_id: int) -> None:
        self.trainings = trainings
        self.training_id = int(training_id)
        self.epochs: list[EpochPublic] = []
        self._attempts = 0

    def poll(self) -> tuple[TrainingPublic, builtins.list[EpochPublic], bool]:
        """One poll: the training, the epochs new since the last poll, and whether it started over."""
        since = self.epochs[-1].epoch if self.epochs else 0
        training = self.trainings.get(self.training_id, since=since)
        attempts = training.job.attempts if training.job else 0
        restarted = bool(self.epochs) and 0 < self._attempts < attempts
        if restarted:
            training = self.trainings.get(self.training_id)
            self.epochs = []
        self._attempts = max(self._attempts, attempts)
        held = {e.epoch for e in self.epochs}
        fresh = sorted((e for e in training.epochs if e.epoch not in held), key=lambda e: e.epoch)
        self.epochs = sorted([*self.epochs, *fresh], key=lambda e: e.epoch)
        return training, fresh, restarted
