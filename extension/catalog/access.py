"""Who may see and change what, in one place (DESIGN.md rule 5).

A private model is visible to its owner alone; to anyone else it does not exist, so every lookup
raises NotFound rather than Forbidden and lists leave it out. Public models are visible to every
signed-in user, and only the owner may change or delete a model. Datasets are public.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col

from headstart.extension.catalog.tables import CatalogModel, Training, User
from headstart.kernels.errors import Forbidden, NotFound


def visible_to(viewer: User) -> Any:
    """A WHERE clause selecting the models that `viewer` may see."""
    return or_(col(CatalogModel.public).is_(True), col(CatalogModel.owner_id) == viewer.id)


def can_see(model: CatalogModel, viewer: User) -> bool:
    return model.public or model.owner_id == viewer.id


def get_visible_model(session: Session, model_id: int, viewer: User) -> CatalogModel:
    """The model, if `viewer` may see it; otherwise NotFound, whether it is private or absent."""
    model = session.get(CatalogModel, model_id)
    if model is None or not can_see(model, viewer):
        raise NotFound(f"model {model_id} not found")
    return model


def get_owned_model(session: Session, model_id: int, viewer: User, action: str) -> CatalogModel:
    """The model, if `viewer` owns it; a visible model owned by someone else is Forbidden."""
    model = get_visible_model(session, model_id, viewer)
    if model.owner_id != viewer.id:
        raise Forbidden(f"only the owner of model {model_id} may {action} it")
    return model


def get_visible_training(session: Session, training_id: int, viewer: User) -> Training:
    """A training is visible to the user who ran it."""
    training = session.get(Training, training_id)
    if training is None or training.owner_id != viewer.id:
        raise NotFound(f"training {training_id} not found")
    return training
