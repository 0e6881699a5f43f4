"""Benchmark: the catalog's read paths under 50 concurrent clients (issue 3, "Speed and load").

Target (no anchor: an absolute service level): p99 under 100 ms for `GET headstart/models?limit=50&offset=`
and `GET headstart/models/{id}`, and zero errors, against a catalog of 10,000 models and 100 users; the
leaderboard's figures are reported beside them. Everything runs on 127.0.0.1.

Seeding shortcut: only the list, show and leaderboard read paths are measured, so the catalog is
filled by inserting rows straight into the Catalog's SQLModel tables (users, models, versions and
cached test-split evaluations) rather than by 10,000 uploads. One real tiny model is created through
the catalog, and every inserted version's artifact points to its file; one real dataset is ingested,
and the one real evaluation of that model on its test split is copied into every cached evaluation,
so that a leaderboard serves real-sized rows without evaluating anything.

The service is a real `jupyter server` subprocess with the extension. It is a single-user lab, so
every client signs in with the server's token as the same catalog user (`user000`); half the models
are public, and the private half belong to all 100 users, so visibility filtering is exercised.

Each client keeps one connection and sends its next request when the last answer has arrived (a
closed loop, no pause between requests), so by Little's law the latency is the clients' number over
the service's throughput: p99 under 100 ms with 50 clients needs well over 500 requests a second.
The clients share the machine's cores with the service, so by default they use a lean HTTP/1.1
client (`Connection`); `--client httpx` shows the same load from httpx.AsyncClient.

Heavy requests beside the load (issue 11): `--training` keeps a training running as a job;
`--ingests N` keeps N dataset uploads in flight (each posts a zip of 90 shapes images and, when it is
answered, the next); `--evaluations N` keeps N evaluation requests in flight, each scoring another
seeded classifier on the dataset's val split, which no cached score covers. A request the service
answers 202 is followed through its job until the job ends, so the heavy work per request is the same
whether the service waits for the job in the request or answers at once.

Through the hub (issue 11): `--hub` runs the same load a second time, in the same run on the same
catalog, through the real JupyterHub of hub_config/ and configurable-http-proxy, as users see it.
Each of the `--users` users is made in the hub with an API token of their own; each client signs in
as users/clients of them in turn (two each by default), on a connection per user, so every request
passes the proxy and the service's hub authentication as that user, and lists and shows what that
user may see. The heavy requests go as user000 in both setups. p50 and p99 are printed for both.

Run as `.venv/bin/python bench/api_load.py [--models 10000] [--users 100] [--clients 50] [--seconds 60]
[--client lean|httpx] [--training] [--ingests 4] [--evaluations 20] [--hub]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from headstart.extension.standalone import serve_catalog, serve_hub
from headstart.kernels.client.jobs import FIRST_POLL_SECONDS

# RemoteJobs.follow's default poll.
FOLLOW_POLL_SECONDS = 0.5

VIEWER = "user000"
HUB_CONFIG = Path(__file__).resolve().parents[1] / "hub_config" / "jupyterhub_config.py"
MAX_SECONDS = 600
OPERATIONS = ("list", "show", "leaderboard")


# --- seeding ----------------------------------------------------------------------------------


@dataclass
class Seeded:
    dataset: str
    # The models each user sees (the public ones and their own), by user name, oldest first.
    visible: dict[str, list[int]]
    # Seeded classifiers visible to the viewer, none scored on the val split: one per evaluation.
    unscored: list[int] = field(default_factory=list)

    @property
    def visible_ids(self) -> list[int]:
        return self.visible[VIEWER]


def seed_catalog(home: Path, models: int, users: int) -> Seeded:
    """Fill the catalog at `home`: see the module docstring for the shortcut taken."""
    from sqlalchemy import insert
    from sqlmodel import col, select

    from headstart.extension.catalog.database import transaction
    from headstart.extension.catalog.tables import (
        CatalogModel,
        Evaluation,
        ModelVersion,
        User,
        label_key,
        now,
    )
    from headstart.extension.manager import Catalog
    from headstart.kernels.engine.demo_data import write_shapes

    catalog = Catalog(home=str(home))
    viewer = catalog.user(VIEWER)
    dataset = catalog.datasets.add(viewer, write_shapes(home / "shapes", per_class=14, seed=1), name="shapes")
    real = catalog.models.create(
        viewer, name="tiny", architecture="small_cnn", weights=None, options={"filters": 2}, labels=None
    )
    evaluation = catalog.evaluations.on_split(viewer, real.id, dataset.id, "test")
    # The seeded classifiers are copies of this one, so scoring one of them is real work.
    classifier = catalog.models.create(
        viewer,
        name="tiny-classifier",
        architecture="small_cnn",
        weights=None,
        options={"filters": 2},
        labels=["circle", "square", "triangle"],
    )
    # Scored too, so that every model on the board is ranked and the load queues no evaluation.
    catalog.evaluations.on_split(viewer, classifier.id, dataset.id, "test")
    with transaction(catalog.engine) as session:
        stored = {
            row.model_id: row
            for row in session.exec(
                select(ModelVersion).where(col(ModelVersion.model_id).in_([real.id, classifier.id]))
            ).all()
        }
    shapes = ["circle", "square", "triangle"]

    rng = random.Random(0)
    stamp = now()
    with transaction(catalog.engine) as session:
        session.execute(
            insert(User), [{"name": f"user{n:03d}", "created_at": stamp} for n in range(1, users)]
        )
        user_ids = [viewer.id, *range(viewer.id + 1, viewer.id + users)]  # type: ignore[operator]
        names = {user_id: f"user{n:03d}" for n, user_id in enumerate(user_ids)}
        rows: list[dict] = []
        visible: dict[str, list[int]] = {name: [] for name in names.values()}
        first = classifier.id + 1
        for model_id in range(first, first + models - 2):
            public = model_id % 2 == 0
            owner = rng.choice(user_ids)
            labels = shapes if model_id % 3 else None
            rows.append(
                {
                    "id": model_id,
                    "name": f"model-{model_id}",
                    "description": "seeded for bench/api_load.py",
                    "kind": "classifier" if labels else "feature_vector",
                    "labels": labels,
                    "label_set": label_key(labels),
                    "public": public,
                    "version": 1,
                    "architecture": "small_cnn",
                    "owner_id": owner,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
            for name in visible if public else [names[owner]]:
                visible[name].append(model_id)
        session.execute(insert(CatalogModel), rows)
        versions = []
        for row in rows:
            copied = stored[classifier.id if row["labels"] else real.id]
            versions.append(
                {
                    "model_id": row["id"],
                    "version": 1,
                    "artifact": copied.artifact,
                    "params": copied.params,
                    "size_bytes": copied.size_bytes,
                    "kind": row["kind"],
                    "labels": row["labels"],
                    "body_sha": copied.body_sha,
                    "created_at": stamp,
                }
            )
        session.execute(insert(ModelVersion), versions)
        cached = evaluation.model_dump(exclude={"id", "model_id", "created_at"})
        session.execute(
            insert(Evaluation),
            [
                {**cached, "model_id": row["id"], "requested_by_id": viewer.id, "created_at": stamp}
                for row in rows
            ],
        )
    # Each seeded classifier's own version folder is a link to the real one's, so that a job that
    # reads a seeded version (an evaluation of it) finds its file.
    copied = catalog.store.path(f"models/{classifier.id}/v1")
    for row in rows:
        if row["labels"]:
            folder = catalog.store.path(f"models/{row['id']}")
            folder.mkdir(parents=True)
            (folder / "v1").symlink_to(copied, target_is_directory=True)
    catalog.close()
    unscored = [model_id for model_id in visible[VIEWER] if model_id % 3]
    visible[VIEWER][:0] = [real.id, classifier.id]
    return Seeded(dataset=dataset.name, visible=visible, unscored=unscored)


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Target:
    """Where one signed-in user's requests go, and the headers that sign them in."""

    url: str
    headers: dict[str, str]
    user: str


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Connection:
    """A lean HTTP/1.1 keep-alive GET client on asyncio streams: one request at a time.

    The load runs on the same two cores as the service, so the clients must cost little: httpx's
    AsyncClient spent about 1 ms of CPU per request, and with it as the client even jupyter-server's
    own `api/status` could not be told apart from the client's queueing. This one reads the status
    line, the headers (keeping the cookies set) and a Content-Length body, which is all the service
    sends to a GET. Like httpx and browsers it accepts gzip; like the rest of the bench it neither
    parses nor decompresses what it reads.
    """

    def __init__(self, target: Target) -> None:
        address, _, prefix = target.url.removeprefix("http://").partition("/")
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.prefix = prefix  # "" for the lab; "services/headstart/" through the hub's proxy
        self.headers = "".join(f"{name}: {value}\r\n" for name, value in target.headers.items())
        # Kept and sent back, as httpx and browsers do: a server that signs a token's user into a
        # cookie (jupyter-server) then does it once, not on every request.
        self.cookies: dict[str, str] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        cookies = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        cookie = f"Cookie: {cookies}\r\n" if cookies else ""
        # As httpx and browsers ask; a body is read, not decoded (nor parsed), gzipped or not.
        host = f"Host: {self.host}:{self.port}\r\nAccept-Encoding: gzip\r\n"
        request = f"GET /{self.prefix}{path} HTTP/1.1\r\n{host}{self.headers}{cookie}\r\n"
        self.writer.write(request.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"set-cookie":
                cookie_name, _, cookie_value = value.decode().split(";", 1)[0].strip().partition("=")
                self.cookies[cookie_name] = cookie_value
        if length is None:
            raise ConnectionError("the answer has no Content-Length")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


class HttpxConnection:
    """The same interface on httpx.AsyncClient (`--client httpx`), to show what the client costs."""

    def __init__(self, target: Target) -> None:
        self.client = httpx.AsyncClient(base_url=target.url, headers=target.headers, timeout=60)

    async def get(self, path: str) -> tuple[int, bytes]:
        try:
            response = await self.client.get(path)
        except httpx.HTTPError as error:
            raise ConnectionError(type(error).__name__) from error
        return response.status_code, response.content

    async def close(self) -> None:
        await self.client.aclose()


CLIENTS = {"lean": Connection, "httpx": HttpxConnection}


async def client_loop(
    number: int,
    targets: list[Target],
    seeded: Seeded,
    until: float,
    shares: dict[str, float],
    tallies: dict,
    connect: type[Connection] | type[HttpxConnection],
) -> None:
    """One client: a connection per user it signs in as, taking turns, one request at a time,
    operations drawn by `shares`."""
    rng = random.Random(number)
    names, weights = list(shares), list(shares.values())
    connections = [connect(target) for target in targets]
    try:
        for turn in itertools.count():
            if time.monotonic() >= until:
                break
            which = turn % len(targets)
            visible = seeded.visible[targets[which].user]
            operation = rng.choices(names, weights)[0]
            if operation == "list":
                offset = rng.randrange(max(1, len(visible) - 50))
                path = f"headstart/models?limit=50&offset={offset}"
            elif operation == "show":
                path = f"headstart/models/{rng.choice(visible)}"
            else:
                path = f"headstart/leaderboards/{seeded.dataset}"
            tally = tallies[operation]
            start = time.perf_counter()
            try:
                status, _ = await asyncio.wait_for(connections[which].get(path), 60)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as error:
                tally.error(type(error).__name__)
                await connections[which].close()
                connections[which] = connect(targets[which])
                continue
            elapsed = time.perf_counter() - start
            if status != 200:
                tally.error(str(status))
            else:
                tally.latencies.append(elapsed)
    finally:
        for connection in connections:
            await connection.close()


# A training that outlasts any load: the whole small CNN trains on the images, 1,000 epochs, with no
# early stopping to end it first.
TRAINING = {"epochs": 1000, "batch_size": 8, "fine_tune_layers": "all", "early_stopping_patience": None}


def start_training(service: Target, seeded: Seeded) -> tuple[int, int]:
    """Start a training of the real tiny model and wait until its job reports epochs.

    Answers (training id, epochs so far). The service's JobRunner starts its local cluster of
    worker processes for it, on these same cores.
    """
    with httpx.Client(base_url=service.url, headers=service.headers, timeout=120) as http:
        body = {"model_id": seeded.visible_ids[0], "dataset": seeded.dataset, "config": TRAINING}
        started = http.post("headstart/trainings", json=body)
        started.raise_for_status()
        training_id = started.json()["id"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            training = http.get(f"headstart/trainings/{training_id}").json()
            if training["status"] != "running":
                raise RuntimeError(f"the training ended before the load: {training}")
            if training["epochs"]:
                job = training["job"]
                print(
                    f"training {training_id} running as job {job['key']} on worker {job['worker']}, "
                    f"{len(training['epochs'])} epochs done; the load starts"
                )
                return training_id, len(training["epochs"])
            time.sleep(0.5)
    raise RuntimeError("the training reported no epoch within 300 s")


def stop_training(service: Target, training: tuple[int, int]) -> None:
    training_id, before = training
    with httpx.Client(base_url=service.url, headers=service.headers, timeout=120) as http:
        answer = http.get(f"headstart/trainings/{training_id}").json()
        during = len(answer["epochs"]) - before
        state = answer["job"]["state"]
        done = f"training {training_id}: {during} epochs finished during the load"
        if state not in ("queued", "running"):
            print(f"{done}; it ended {state} in it")
            return
        print(f"{done}, still {state}; cancelling it")
        http.post(f"headstart/trainings/{training_id}/cancel").raise_for_status()


# --- heavy requests beside the load ------------------------------------------------------------

# One heavy request: posts it on the client and answers the service's first answer.
HeavyRequest = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass
class Heavy:
    """The heavy requests of one kind made during the load: how many ended, and how long each took."""

    seconds: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


async def until_ended(http: httpx.AsyncClient, answer: httpx.Response) -> str:
    """The end of a heavy request: its status, or for a 202 the final state of the job it answers."""
    if answer.status_code != 202:
        return str(answer.status_code)
    body = answer.json()
    job = body.get("job") or body
    # Followed as HeadstartClient's jobs.follow does: polls start quick and slow down to its poll.
    pause = FIRST_POLL_SECONDS
    while True:
        state = (await http.get(f"headstart/jobs/{job['id']}")).json()["state"]
        if state not in ("queued", "running"):
            return state
        await asyncio.sleep(pause)
        pause = min(pause * 2, FOLLOW_POLL_SECONDS)


async def heavy_loop(service: Target, until: float, tally: Heavy, request: HeavyRequest) -> None:
    """One heavy request after another until the load ends; each is followed until its work ended."""
    async with httpx.AsyncClient(base_url=service.url, headers=service.headers, timeout=600) as http:
        while time.monotonic() < until:
            start = time.perf_counter()
            try:
                outcome = await until_ended(http, await request(http))
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            if outcome in ("200", "201", "succeeded"):
                tally.seconds.append(time.perf_counter() - start)
            else:
                tally.errors[outcome] = tally.errors.get(outcome, 0) + 1


def ingest_request(payload: bytes, names: Iterator[str]) -> HeavyRequest:
    def post(http: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return http.post(f"headstart/datasets?name={next(names)}", content=payload)

    return post


def evaluation_request(dataset: str, models: Iterator[int]) -> HeavyRequest:
    def post(http: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        body = {"model_id": next(models), "dataset": dataset, "split": "val"}
        return http.post("headstart/evaluations", json=body)

    return post


def ingest_payload(home: Path) -> bytes:
    """A zip of 30 generated images per shape: one dataset upload of the heavy load."""
    from headstart.kernels.engine.demo_data import write_shapes

    folder = write_shapes(home / "ingest-source", per_class=30, seed=2)
    return Path(shutil.make_archive(str(home / "ingest"), "zip", folder)).read_bytes()


def report_heavy(heavy: dict[str, Heavy]) -> int:
    errors = 0
    for kind, tally in heavy.items():
        count = len(tally.seconds)
        mean = statistics.fmean(tally.seconds) if tally.seconds else float("nan")
        errors_by_kind = tally.errors or 0
        print(f"{kind}: {count} ended during the load, {mean:.1f} s each on average, errors {errors_by_kind}")
        errors += sum(tally.errors.values())
    return errors


def percentile(values: list[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(share * 1000) - 1]


async def run_load(
    clients: list[list[Target]],
    seeded: Seeded,
    seconds: float,
    shares: dict,
    client: str,
    heavy: dict[str, tuple[int, HeavyRequest]],
) -> dict:
    """`clients[n]` are the users client n signs in as; heavy requests go as the viewer."""
    tallies = {operation: Tally() for operation in OPERATIONS}
    until = time.monotonic() + seconds
    started = time.monotonic()
    connect = CLIENTS[client]
    heavy_tallies = {kind: Heavy() for kind in heavy}
    viewer = next(target for targets in clients for target in targets if target.user == VIEWER)
    loops = [
        heavy_loop(viewer, until, heavy_tallies[kind], request)
        for kind, (count, request) in heavy.items()
        for _ in range(count)
    ]
    await asyncio.gather(
        *(
            client_loop(n, targets, seeded, until, shares, tallies, connect)
            for n, targets in enumerate(clients)
        ),
        *loops,
    )
    elapsed = time.monotonic() - started
    return {"tallies": tallies, "elapsed": elapsed, "heavy": heavy_tallies}


def report(result: dict) -> int:
    """Print the table; answer the number of errors (the targets missed are printed, not failed)."""
    elapsed, tallies = result["elapsed"], result["tallies"]
    print(f"{'operation':<12} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>9} {'errors':>7}  target")
    for operation, tally in tallies.items():
        count, errors = len(tally.latencies), sum(tally.errors.values())
        p50 = percentile(tally.latencies, 0.50) * 1000
        p99 = percentile(tally.latencies, 0.99) * 1000
        target = "p99 < 100 ms" if operation != "leaderboard" else "(reported)"
        if operation != "leaderboard" and not p99 < 100:
            target += " MISSED"
        rate = count / elapsed
        print(f"{operation:<12} {count:>9} {rate:>8.1f} {p50:>8.1f} {p99:>9.1f} {errors:>7}  {target}")
        if tally.errors:
            print(f"{'':<12} errors by kind: {tally.errors}")
    total = sum(len(t.latencies) for t in tallies.values())
    all_errors = sum(sum(t.errors.values()) for t in tallies.values())
    print(f"{'all':<12} {total:>9} {total / elapsed:>8.1f} {'':>8} {'':>9} {all_errors:>7}  zero errors")
    return all_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60, help=f"at most {MAX_SECONDS}")
    parser.add_argument(
        "--leaderboard-share",
        type=float,
        default=0.1,
        help="share of requests that fetch the leaderboard; list and show split the rest evenly",
    )
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="lean",
        help="the clients' HTTP code: a lean keep-alive client on asyncio streams (the default), or "
        "httpx.AsyncClient, which costs the shared cores about 1 ms of CPU a request",
    )
    parser.add_argument(
        "--training",
        action="store_true",
        help="keep a training running as a job on the service's local Dask cluster during the load "
        "(issue 4: the API stays under its target while a training runs on the same machine)",
    )
    parser.add_argument(
        "--ingests",
        type=int,
        default=0,
        help="dataset uploads kept in flight during the load, each followed until its ingest ended",
    )
    parser.add_argument(
        "--evaluations",
        type=int,
        default=0,
        help="evaluation requests kept in flight during the load, each scoring a classifier no score "
        "covers yet, followed until its job ended",
    )
    parser.add_argument(
        "--hub",
        action="store_true",
        help="run the load a second time through the real JupyterHub of hub_config/ and "
        "configurable-http-proxy, each of --users users signed in with their own API token",
    )
    args = parser.parse_args()
    seconds = min(args.seconds, MAX_SECONDS)
    share = min(max(args.leaderboard_share, 0.0), 1.0)
    shares = {"list": (1 - share) / 2, "show": (1 - share) / 2, "leaderboard": share}

    print(f"machine: {os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="api-load-") as folder:
        home = Path(folder)
        start = time.perf_counter()
        seeded = seed_catalog(home, args.models, args.users)
        print(
            f"seeded {args.models} models, {args.users} users, dataset {seeded.dataset!r} in "
            f"{time.perf_counter() - start:.1f} s; {len(seeded.visible_ids)} models visible to {VIEWER}"
        )
        heavy: dict = {}
        if args.ingests:
            names = (f"load-{n}" for n in itertools.count())
            heavy["ingests"] = (args.ingests, ingest_request(ingest_payload(home), names))
        if args.evaluations:
            heavy["evaluations"] = (
                args.evaluations,
                evaluation_request(seeded.dataset, iter(seeded.unscored)),
            )
        load = Load(seeded, args.clients, seconds, shares, args.client, heavy, args.training)
        with serve_catalog(home, VIEWER) as service:
            lab = Target(service.url, service.headers, VIEWER)
            print(
                f"\n[lab] service {service.url}: a single-user lab, so all {args.clients} clients sign in "
                f"with its token as the one catalog user {VIEWER!r} (half the models are private to others)"
            )
            results["lab"] = load.run([[lab]] * args.clients)
        if args.hub:
            users = [f"user{n:03d}" for n in range(args.users)]
            with serve_hub(home, HUB_CONFIG, users=users) as hub:
                targets = [
                    Target(hub.service_url, {"Authorization": f"token {hub.tokens[user]}"}, user)
                    for user in users
                ]
                # Each client signs in as every users/clients-th user in turn, each with its own token.
                clients = [targets[n :: args.clients] for n in range(min(args.clients, len(targets)))]
                print(
                    f"\n[hub] the hub at {hub.url}, through configurable-http-proxy to the service at "
                    f"{hub.service_url}: {len(users)} users, each with their own API token, "
                    f"{len(clients[0])} to a client"
                )
                results["hub"] = load.run(clients)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    errors = 0
    for setup, result in results.items():
        print(f"\n[{setup}]")
        errors += report(result) + report_heavy(result["heavy"])
    if len(results) > 1:
        print("\nsetup   list p50 / p99 ms     show p50 / p99 ms     errors")
        for setup, result in results.items():
            figures = []
            for operation in ("list", "show"):
                latencies = result["tallies"][operation].latencies
                figures.append(
                    f"{percentile(latencies, 0.5) * 1000:7.1f} / {percentile(latencies, 0.99) * 1000:7.1f}"
                )
            failed = sum(sum(t.errors.values()) for t in result["tallies"].values())
            print(f"{setup:<7} {figures[0]:<21} {figures[1]:<21} {failed}")
    sys.exit(1 if errors else 0)


@dataclass
class Load:
    """The same load, run against one setup after another."""

    seeded: Seeded
    clients: int
    seconds: float
    shares: dict
    client: str
    heavy: dict
    training: bool

    def run(self, clients: list[list[Target]]) -> dict:
        viewer = next(target for targets in clients for target in targets if target.user == VIEWER)
        for target in {target.user: target for targets in clients for target in targets}.values():
            # Each user's first request (the hub looks its token up once) and the kept snapshot.
            with httpx.Client(base_url=target.url, headers=target.headers, timeout=120) as warm:
                warm.get("headstart/me").raise_for_status()
        with httpx.Client(base_url=viewer.url, headers=viewer.headers, timeout=120) as warm:
            for path in ("headstart/models?limit=50", f"headstart/models/{self.seeded.visible_ids[0]}"):
                warm.get(path).raise_for_status()
            board = warm.get(f"headstart/leaderboards/{self.seeded.dataset}")
            board.raise_for_status()
            # httpx decodes the body: its content is the JSON, the bytes downloaded what was sent.
            encoding = board.headers.get("Content-Encoding", "plain")
            json_mb, sent_mb = len(board.content) / 1e6, board.num_bytes_downloaded / 1e6
            rows = len(board.json())
            print(f"leaderboard: {rows} rows, {json_mb:.1f} MB of JSON, sent {encoding} in {sent_mb:.2f} MB")
        training = start_training(viewer, self.seeded) if self.training else None
        mix = ", ".join(f"{name} {value:.0%}" for name, value in self.shares.items())
        beside = "".join(f", {count} {kind} in flight" for kind, (count, _) in self.heavy.items())
        print(f"{self.clients} {self.client} clients for {self.seconds:.0f} s, mix {mix}{beside}")
        result = asyncio.run(
            run_load(clients, self.seeded, self.seconds, self.shares, self.client, self.heavy)
        )
        if training is not None:
            stop_training(viewer, training)
        return result


if __name__ == "__main__":
    main()
