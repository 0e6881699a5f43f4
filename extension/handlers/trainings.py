"""Trainings: start one in the background, list yours, show one with its epochs, decide, cancel."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.catalog.tables import User
from headstart.extension.handlers.base import CatalogHandler
from headstart.kernels.schemas import DecisionRequest, ModelPublic, TrainingCreate, TrainingPublic

TRAINING = r"/headstart/trainings/(\d+)"


class TrainingsHandler(CatalogHandler):
    """`POST headstart/trainings`: record a training and answer 202 while it runs; `GET`: yours."""

    auth_resource = "catalog:trainings"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        model_id = self.query_int("model_id", low=1)
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.trainings.list, viewer, model_id=model_id))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.read_json(TrainingCreate)
        viewer = await self.viewer()
        training = await self.call(
            self.catalog.trainings.begin, viewer, body.model_id, body.dataset, body.config
        )
        self.write_job(training, training.job.id)  # type: ignore[union-attr]


class TrainingHandler(CatalogHandler):
    """`GET headstart/trainings/{id}?since=N`: a training with its job's state and the epochs after N.

    A dashboard asks with the last epoch it has, so each poll carries only what is new.
    """

    auth_resource = "catalog:trainings"

    @web.authenticated
    @authorized
    async def get(self, training_id: str) -> None:
        since = self.query_int("since", 0, low=0)
        viewer = await self.viewer()
        training = await self.call(self.catalog.trainings.get, viewer, int(training_id), since=since)
        self.write_json(training)


class DecisionHandler(CatalogHandler):
    """`POST headstart/trainings/{id}/decision`: update, keep_both or discard the candidate."""

    auth_resource = "catalog:trainings"

    @web.authenticated
    @authorized
    async def post(self, training_id: str) -> None:
        body = self.read_json(DecisionRequest)
        viewer = await self.viewer()
        training, model = await self.call(self._decide, viewer, int(training_id), body)
        self.write_json({"training": training, "model": model})

    def _decide(
        self, viewer: User, training_id: int, body: DecisionRequest
    ) -> tuple[TrainingPublic, ModelPublic | None]:
        model = self.catalog.trainings.decide(viewer, training_id, body.decision, name=body.name)
        return self.catalog.trainings.get(viewer, training_id), model


class CancelHandler(CatalogHandler):
    """`POST headstart/trainings/{id}/cancel`: ask a running training to stop at its next batch."""

    auth_resource = "catalog:trainings"

    @web.authenticated
    @authorized
    async def post(self, training_id: str) -> None:
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.trainings.cancel, viewer, int(training_id)), 202)


default_handlers = [
    (r"/headstart/trainings", TrainingsHandler),
    (TRAINING, TrainingHandler),
    (TRAINING + r"/decision", DecisionHandler),
    (TRAINING + r"/cancel", CancelHandler),
]
