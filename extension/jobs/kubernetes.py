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
import importlib.metadata
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import headstart

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

# The artifact store is a local folder to headstart (ArtifactStore), so the service and every
# worker mount the same ReadWriteMany claim at the same path.
STORE_CLAIM = "headstart-store"
STORE_PATH = "/srv/headstart"
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
    idle_timeout: int = 0,
) -> dict[str, Any]:
    """The DaskCluster resource: the scheduler and the default (CPU) worker group.

    `env` adds to (or overrides) WORKER_ENV on the scheduler and the workers. `store_claim` names
    the PersistentVolumeClaim mounted at STORE_PATH on the workers; None mounts nothing.
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
    _finish_worker(spec["spec"]["worker"]["spec"], worker_resources or WORKER_RESOURCES, store_claim)
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
    _finish_worker(pod, resources, store_claim)
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


def _finish_worker(pod: dict[str, Any], resources: Mapping[str, Any], store_claim: str | None) -> None:
    """Resources, the store's volume and the user ids of a worker pod spec, in place."""
    container = pod["containers"][0]
    container["resources"] = copy.deepcopy(dict(resources))
    pod["securityContext"] = dict(RUN_AS)
    if store_claim:
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


def render(resource: Mapping[str, Any]) -> str:
    """A resource as the YAML checked in under hub_config/k8s/."""
    import yaml

    header = (
        "# Written by `python -m headstart.extension.jobs.kubernetes --write hub_config/k8s`; edit\n"
        "# extension/jobs/kubernetes.py instead (tests/extension/jobs/test_kubernetes_specs.py compares).\n"
    )
    return header + yaml.safe_dump(dict(resource), sort_keys=False)


SPEC_FILES: dict[str, Callable[..., dict[str, Any]]] = {
    "dask-cluster.yaml": cluster_spec,
    "dask-gpu-workers.yaml": gpu_worker_group,
}


def write(folder: Path, *, image: str = WORKER_IMAGE, namespace: str | None = None) -> list[Path]:
    """Write the default specs (with `image` and `namespace`) to `folder`; returns the paths."""
    written = []
    for file_name, build in SPEC_FILES.items():
        path = folder / file_name
        path.write_text(render(build(image=image, namespace=namespace)))
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
