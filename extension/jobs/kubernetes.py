"""The Dask cluster on Kubernetes: a DaskCluster with a CPU worker group, and a GPU DaskWorkerGroup.

The specs are plain dicts built with dask-kubernetes' `make_cluster_spec` and `make_worker_spec`, so
they can be checked as data and written to `hub_config/k8s/` (`python -m
headstart.extension.jobs.kubernetes --write hub_config/k8s`); `kube_cluster` hands them to the Dask
operator. Only the GPU group's workers request `nvidia.com/gpu`, and they advertise `--resources
GPU=1`, so a training submitted with `resources={"GPU": 1}` runs on them and nothing else does.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.metadata
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import headstart
from headstart.kernels.store import CACHE_ENV

if TYPE_CHECKING:
    from dask_kubernetes.operator import KubeCluster


def _pinned_tensorflow() -> str:
    """The TensorFlow version headstart pins (`tensorflow-cpu==X` in pyproject.toml)."""
    for requirement in importlib.metadata.requires("headstart") or []:
        found = re.fullmatch(r"tensorflow-cpu\s*==\s*([\w.]+)", requirement.split(";")[0].strip())
        if found:
            return found.group(1)
    raise RuntimeError("headstart's metadata pins no tensorflow-cpu version; reinstall the package")


HEADSTART_VERSION = headstart.__version__
TENSORFLOW_VERSION = _pinned_tensorflow()
# One tag for both images of hub_config/k8s/Dockerfile, so a worker never runs other versions than
# the notebooks and the catalog service. Operators prefix the names with their own registry.
IMAGE_TAG = f"{HEADSTART_VERSION}-tf{TENSORFLOW_VERSION}"
WORKER_IMAGE = f"headstart-worker:{IMAGE_TAG}"
NOTEBOOK_IMAGE = f"headstart-notebook:{IMAGE_TAG}"

CLUSTER_NAME = "headstart"
GPU_GROUP = "gpu"
GPU_RESOURCE = "nvidia.com/gpu"
# NVIDIA's GPU feature discovery labels GPU nodes so; GPU node pools are commonly tainted with the key.
GPU_NODE_SELECTOR: dict[str, str] = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS: list[dict[str, str]] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]

# Two ways to hold the artifact store. As a folder, the service and every worker mount the same
# ReadWriteMany claim at the same path. As an object store (c.Catalog.store_url = s3://...), they
# mount nothing shared: the service and the workers (never the scheduler, nor users' pods) get the
# store's credentials from STORE_SECRET, and each pod caches what it reads in an emptyDir.
STORE_CLAIM = "headstart-store"
STORE_PATH = "/srv/headstart"
STORE_SECRET = "headstart-store-credentials"
CACHE_PATH = "/var/cache/headstart"
# The notebook image's user; Zero to JupyterHub runs user pods as uid 1000 and gid 100 too.
RUN_AS: dict[str, int] = {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100}

WORKER_ENV: dict[str, str] = {
    "HEADSTART_HOME": STORE_PATH,
    "KERAS_BACKEND": "tensorflow",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # TensorFlow otherwise takes all of a GPU's memory when it starts.
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}
SCHEDULER_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"memory": "2Gi"},
}
WORKER_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "2", "memory": "8Gi"},
    "limits": {"memory": "8Gi"},
}
# distributed no longer installs the `dask-scheduler` and `dask-worker` scripts that
# make_cluster_spec names, only the `dask` command.
SCHEDULER_ARGS = ["dask", "scheduler", "--host", "0.0.0.0"]
WORKER_COMMAND = ["dask", "worker"]
GPU_WORKER_COMMAND = [*WORKER_COMMAND, "--resources", "GPU=1"]


def cluster_spec(
    name: str = CLUSTER_NAME,
    *,
    image: str = WORKER_IMAGE,
    namespace: str | None = None,
    cpu_workers: int = 2,
    env: Mapping[str, str] | None = None,
    worker_resources: Mapping[str, Mapping[str, str]] | None = None,
    scheduler_resources: Mapping[str, Mapping[str, str]] | None = None,
    store_claim: str | None = STORE_CLAIM,
    store_secret: str | None = None,
    idle_timeout: int = 0,
) -> dict[str, Any]:
    """The DaskCluster resource: the scheduler and the default (CPU) worker group.

    `env` adds to (or overrides) WORKER_ENV on the scheduler and the workers. `store_claim` names
    the PersistentVolumeClaim mounted at STORE_PATH on the workers; None mounts nothing.
    `store_secret` names the Secret of an object store's credentials, which the workers get as
    their environment (with a local cache); it takes the place of the claim.
    """
    from dask_kubernetes.operator import make_cluster_spec

    spec = make_cluster_spec(
        name=name,
        image=image,
        n_workers=cpu_workers,
        env={**WORKER_ENV, **(env or {})},
        worker_command=list(WORKER_COMMAND),
        idle_timeout=idle_timeout,
    )
    if namespace:
        spec["metadata"]["namespace"] = namespace
    scheduler = spec["spec"]["scheduler"]["spec"]
    scheduler["containers"][0]["args"] = list(SCHEDULER_ARGS)
    scheduler["containers"][0]["resources"] = copy.deepcopy(dict(scheduler_resources or SCHEDULER_RESOURCES))
    scheduler["securityContext"] = dict(RUN_AS)
    _finish_worker(
        spec["spec"]["worker"]["spec"], worker_resources or WORKER_RESOURCES, store_claim, store_secret
    )
    return spec


def gpu_worker_group(
    name: str = CLUSTER_NAME,
    *,
    image: str = WORKER_IMAGE,
    namespace: str | None = None,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    worker_resources: Mapping[str, Mapping[str, str]] | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, str]] | None = None,
    store_claim: str | None = STORE_CLAIM,
    store_secret: str | None = None,
) -> dict[str, Any]:
    """The DaskWorkerGroup `<name>-gpu` of cluster `name`: one GPU per worker, advertised as GPU=1.

    Its workers get the same image, env and store as the CPU group's, `nvidia.com/gpu: 1` added to
    their requests and limits, and `node_selector` (default GPU_NODE_SELECTOR) and `tolerations`
    (default GPU_TOLERATIONS) so that they land on GPU nodes.
    """
    from dask_kubernetes.operator import make_worker_spec

    worker = make_worker_spec(
        image=image,
        n_workers=workers,
        env={**WORKER_ENV, **(env or {})},
        worker_command=list(GPU_WORKER_COMMAND),
    )
    resources = copy.deepcopy(dict(worker_resources or WORKER_RESOURCES))
    for kind in ("requests", "limits"):
        resources[kind] = {**resources.get(kind, {}), GPU_RESOURCE: "1"}
    pod = worker["spec"]
    _finish_worker(pod, resources, store_claim, store_secret)
    pod["nodeSelector"] = dict(GPU_NODE_SELECTOR if node_selector is None else node_selector)
    pod["tolerations"] = [dict(toleration) for toleration in (tolerations or GPU_TOLERATIONS)]
    metadata: dict[str, str] = {"name": f"{name}-{GPU_GROUP}"}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskWorkerGroup",
        "metadata": metadata,
        "spec": {"cluster": name, "worker": worker},
    }


def _finish_worker(
    pod: dict[str, Any], resources: Mapping[str, Any], store_claim: str | None, store_secret: str | None
) -> None:
    """Resources, the store's volume or credentials, and the user ids of a worker pod spec, in place."""
    container = pod["containers"][0]
    container["resources"] = copy.deepcopy(dict(resources))
    pod["securityContext"] = dict(RUN_AS)
    if store_secret:
        if store_claim:
            raise ValueError("a worker gets the store as a claim or as an object store's secret, not both")
        container["envFrom"] = [{"secretRef": {"name": store_secret}}]
        container["env"] = [
            *(item for item in container["env"] if item["name"] != "HEADSTART_HOME"),
            {"name": CACHE_ENV, "value": CACHE_PATH},
        ]
        pod["volumes"] = [{"name": "cache", "emptyDir": {}}]
        container["volumeMounts"] = [{"name": "cache", "mountPath": CACHE_PATH}]
    elif store_claim:
        pod["volumes"] = [{"name": "store", "persistentVolumeClaim": {"claimName": store_claim}}]
        container["volumeMounts"] = [{"name": "store", "mountPath": STORE_PATH}]


def kube_cluster(spec: Mapping[str, Any], gpu_group: Mapping[str, Any] | None = None) -> KubeCluster:
    """Create the cluster from `spec` through the Dask operator, or connect to it if it exists.

    The cluster outlives the service (`shutdown_on_close=False`), so that a restarted service
    re-attaches to the jobs still running on it. The GPU group is added unless it is there already.
    """
    import kr8s
    from dask_kubernetes.operator import KubeCluster

    metadata = spec["metadata"]
    cluster = KubeCluster(
        custom_cluster_spec=copy.deepcopy(dict(spec)),
        namespace=metadata.get("namespace"),
        shutdown_on_close=False,
        quiet=True,
    )
    if gpu_group is not None:
        if gpu_group["spec"]["cluster"] != metadata["name"]:
            raise ValueError(
                f"the GPU worker group belongs to {gpu_group['spec']['cluster']!r}, not {metadata['name']!r}"
            )
        # add_worker_group names the group `<cluster>-<name>` itself.
        suffix = gpu_group["metadata"]["name"].removeprefix(f"{metadata['name']}-")
        try:
            cluster.add_worker_group(suffix, custom_spec=copy.deepcopy(gpu_group["spec"]["worker"]))
        except kr8s.ServerError as error:
            if getattr(error.response, "status_code", None) != 409:  # 409: created by an earlier run
                raise
    return cluster


def render(resource: Mapping[str, Any], helm: bool = False) -> str:
    """A resource (or Helm values) as the YAML checked in under hub_config/k8s/."""
    import yaml

    header = (
        "# Written by `python -m headstart.extension.jobs.kubernetes --write hub_config/k8s`; edit\n"
        "# extension/jobs/kubernetes.py instead (tests/extension/jobs/test_kubernetes_specs.py compares).\n"
    )
    if helm:
        header += (
            "# Helm values for an object store, on top of values.yaml, whose service container they\n"
            "# repeat with the store added (edit values.yaml, then write again):\n"
            "#   helm upgrade --install headstart jupyterhub/jupyterhub -n headstart \\\n"
            "#     -f hub_config/k8s/values.yaml -f hub_config/k8s/object-store/values.yaml\n"
        )
    return header + yaml.safe_dump(dict(resource), sort_keys=False)


SPEC_FILES: dict[str, Callable[..., dict[str, Any]]] = {
    "dask-cluster.yaml": cluster_spec,
    "dask-gpu-workers.yaml": gpu_worker_group,
    "object-store/dask-cluster.yaml": functools.partial(
        cluster_spec, store_claim=None, store_secret=STORE_SECRET
    ),
    "object-store/dask-gpu-workers.yaml": functools.partial(
        gpu_worker_group, store_claim=None, store_secret=STORE_SECRET
    ),
}
VALUES_FILE, OBJECT_STORE_VALUES = "values.yaml", "object-store/values.yaml"
# The catalog's home with an object store: its SQLite database, on a claim of the service's alone.
HOME_CLAIM = "headstart-home"


def object_store_values(
    values: Mapping[str, Any], store_url: str = "s3://headstart-artifacts/catalog"
) -> dict:
    """The Helm values to add to `values` (values.yaml) for an object store: the service's container
    and volumes again (Helm replaces lists whole), with the store's URL and credentials, its home on
    a claim of its own, and no shared claim."""
    [service] = [c for c in values["hub"]["extraContainers"] if c["name"] == "headstart"]
    service = copy.deepcopy(dict(service))
    service["args"] = [
        *service["args"],
        f"--Catalog.store_url={store_url}",
        f"--JobRunner.kubernetes_store_secret={STORE_SECRET}",
    ]
    service["envFrom"] = [{"secretRef": {"name": STORE_SECRET}}]
    service["env"] = [*service["env"], {"name": CACHE_ENV, "value": CACHE_PATH}]
    service["volumeMounts"] = [
        {"name": "home", "mountPath": STORE_PATH},
        {"name": "cache", "mountPath": CACHE_PATH},
    ]
    others = [c for c in values["hub"]["extraContainers"] if c["name"] != "headstart"]
    return {
        "hub": {
            "extraContainers": [*others, service],
            "extraVolumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": HOME_CLAIM}},
                {"name": "cache", "emptyDir": {}},
            ],
        }
    }


def write(folder: Path, *, image: str = WORKER_IMAGE, namespace: str | None = None) -> list[Path]:
    """Write the default specs (with `image` and `namespace`) to `folder`, and the object store's
    Helm values from `folder`'s values.yaml when it has one; returns the paths."""
    written = []
    for file_name, build in SPEC_FILES.items():
        path = folder / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(build(image=image, namespace=namespace)))
        written.append(path)
    if (folder / VALUES_FILE).is_file():
        import yaml

        path = folder / OBJECT_STORE_VALUES
        path.write_text(
            render(object_store_values(yaml.safe_load((folder / VALUES_FILE).read_text())), helm=True)
        )
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m headstart.extension.jobs.kubernetes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--write", type=Path, required=True, metavar="FOLDER", help="where to write")
    parser.add_argument("--image", default=WORKER_IMAGE, help="the worker image, with your registry")
    parser.add_argument("--namespace", default=None, help="the namespace (default: kubectl's)")
    args = parser.parse_args(argv)
    for path in write(args.write, image=args.image, namespace=args.namespace):
        print(path)


if __name__ == "__main__":
    main()
