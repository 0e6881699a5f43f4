"""The Kubernetes deployment, checked as data: no Kubernetes cluster (nor Dask operator) runs here.

The specs are built with dask-kubernetes' `make_cluster_spec` through headstart's own functions, and
compared with the files under hub_config/k8s/ (the checked-in specs, Dockerfile, Helm values, RBAC
and storage claim), so that resources, images, commands, env and versions cannot drift apart.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from headstart.extension.jobs import kubernetes as k8s

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "hub_config" / "k8s"
# What the deployment must say, spelled out here rather than read from the module under test, so a
# changed constant there shows up as a failure here.
GPU = "nvidia.com/gpu"
ENV = {
    "HEADSTART_HOME": "/srv/headstart",
    "KERAS_BACKEND": "tensorflow",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}
CPU_WORKER_RESOURCES = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}
GPU_WORKER_RESOURCES = {
    "requests": {"cpu": "2", "memory": "8Gi", GPU: "1"},
    "limits": {"memory": "8Gi", GPU: "1"},
}
SCHEDULER_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
GPU_NODES = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
STORE_VOLUMES = [{"name": "store", "persistentVolumeClaim": {"claimName": "headstart-store"}}]
STORE_MOUNTS = [{"name": "store", "mountPath": "/srv/headstart"}]
RUN_AS = {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100}
WORKER_ARGS = ["--name", "$(DASK_WORKER_NAME)", "--dashboard", "--dashboard-address", "8788"]


def _load(name: str) -> Any:
    return yaml.safe_load((K8S / name).read_text())


def _documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def _pods() -> dict[str, dict]:
    """The pod specs of the scheduler, the CPU (default) group and the GPU group, as built."""
    spec = k8s.cluster_spec()
    return {
        "scheduler": spec["spec"]["scheduler"]["spec"],
        "cpu": spec["spec"]["worker"]["spec"],
        "gpu": k8s.gpu_worker_group()["spec"]["worker"]["spec"],
    }


def _container(pod: dict) -> dict:
    [container] = pod["containers"]
    return container


def _env(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def _values() -> dict:
    return _load("values.yaml")


def _sidecar() -> dict:
    [container] = [c for c in _values()["hub"]["extraContainers"] if c["name"] == "headstart"]
    return container


def _dockerfile_args() -> dict[str, str]:
    text = (K8S / "Dockerfile").read_text()
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))


def _dockerfile_stages() -> dict[str, str]:
    """Each stage's name and its text, from its FROM line to the next."""
    text = (K8S / "Dockerfile").read_text()
    starts = list(re.finditer(r"^FROM .* AS (\w+)$", text, flags=re.MULTILINE))
    ends = [match.start() for match in starts[1:]] + [len(text)]
    return {match.group(1): text[match.start() : end] for match, end in zip(starts, ends, strict=True)}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pinned(project: dict, name: str) -> str:
    [pin] = [dep.split("==")[1] for dep in project["dependencies"] if dep.startswith(f"{name}==")]
    return pin


def _tag() -> str:
    """The images' tag as pyproject.toml's versions make it: <headstart>-tf<TensorFlow>."""
    project = _pyproject()
    return f"{project['version']}-tf{_pinned(project, 'tensorflow-cpu')}"


# --- resources and placement -------------------------------------------------------------------


def test_gpu_is_requested_and_limited_by_gpu_workers_only() -> None:
    pods = _pods()
    assert _container(pods["gpu"])["resources"] == GPU_WORKER_RESOURCES
    assert _container(pods["cpu"])["resources"] == CPU_WORKER_RESOURCES
    assert _container(pods["scheduler"])["resources"] == SCHEDULER_RESOURCES
    # An operator's own sizes keep the GPU on the GPU group.
    custom = {"requests": {"cpu": "8", "memory": "30Gi"}, "limits": {"memory": "30Gi"}}
    group = k8s.gpu_worker_group(worker_resources=custom)["spec"]["worker"]["spec"]
    assert _container(group)["resources"] == {
        "requests": {"cpu": "8", "memory": "30Gi", GPU: "1"},
        "limits": {"memory": "30Gi", GPU: "1"},
    }
    cluster = k8s.cluster_spec(worker_resources=custom)["spec"]["worker"]["spec"]
    assert _container(cluster)["resources"] == custom


def test_node_selector_and_toleration_sit_on_the_gpu_group_only() -> None:
    pods = _pods()
    assert pods["gpu"]["nodeSelector"] == GPU_NODES
    assert pods["gpu"]["tolerations"] == GPU_TOLERATIONS
    for role in ("scheduler", "cpu"):
        assert "nodeSelector" not in pods[role], role
        assert "tolerations" not in pods[role], role
    toleration = {"key": "pool", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}
    custom = k8s.gpu_worker_group(node_selector={"pool": "a100"}, tolerations=[toleration])
    pod = custom["spec"]["worker"]["spec"]
    assert (pod["nodeSelector"], pod["tolerations"]) == ({"pool": "a100"}, [toleration])


def test_gpu_group_belongs_to_the_cluster() -> None:
    spec, group = k8s.cluster_spec("jobs", namespace="ml"), k8s.gpu_worker_group("jobs", namespace="ml")
    assert (spec["apiVersion"], spec["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    assert (group["apiVersion"], group["kind"]) == ("kubernetes.dask.org/v1", "DaskWorkerGroup")
    assert spec["metadata"] == {"name": "jobs", "namespace": "ml"}
    assert group["metadata"] == {"name": "jobs-gpu", "namespace": "ml"}
    assert group["spec"]["cluster"] == "jobs"
    # The scheduler's service finds the scheduler pod of this cluster by its labels.
    assert spec["spec"]["scheduler"]["service"]["selector"] == {
        "dask.org/cluster-name": "jobs",
        "dask.org/component": "scheduler",
    }
    assert (spec["spec"]["worker"]["replicas"], group["spec"]["worker"]["replicas"]) == (2, 1)
    sized = k8s.cluster_spec(cpu_workers=5), k8s.gpu_worker_group(workers=3)
    assert (sized[0]["spec"]["worker"]["replicas"], sized[1]["spec"]["worker"]["replicas"]) == (5, 3)


# --- commands ----------------------------------------------------------------------------------


def _worker_params(args: list[str]) -> dict:
    """The options `dask worker` parses from a container's args (as its CLI would, without running)."""
    from distributed.cli.dask_worker import main

    assert args[:2] == ["dask", "worker"]
    return main.make_context("dask worker", args[2:]).params


def test_gpu_workers_advertise_gpu_1_and_cpu_workers_nothing() -> None:
    pods = _pods()
    gpu_args = _container(pods["gpu"])["args"]
    assert gpu_args == ["dask", "worker", "--resources", "GPU=1", *WORKER_ARGS]
    assert _container(pods["cpu"])["args"] == ["dask", "worker", *WORKER_ARGS]
    resources = _worker_params(gpu_args)["resources"]
    # The same parsing as distributed/cli/dask_worker.py's: "NAME=amount" pairs.
    assert {name: float(amount) for name, amount in (p.split("=") for p in resources.split(","))} == {
        "GPU": 1
    }
    assert _worker_params(_container(pods["cpu"])["args"])["resources"] is None


def test_commands_exist_in_the_installed_distributed() -> None:
    from distributed.cli.dask_scheduler import main as scheduler_main

    commands = {entry.name for entry in importlib.metadata.entry_points(group="dask_cli")}
    assert {"scheduler", "worker"} <= commands
    pods = _pods()
    args = _container(pods["scheduler"])["args"]
    assert args == ["dask", "scheduler", "--host", "0.0.0.0"]
    assert scheduler_main.make_context("dask scheduler", args[2:]).params["host"] == "0.0.0.0"
    for role in ("cpu", "gpu"):
        params = _worker_params(_container(pods[role])["args"])
        assert (params["name"], params["dashboard"], params["dashboard_address"]) == (
            "$(DASK_WORKER_NAME)",
            True,
            "8788",
        ), role


# --- images, env and versions ------------------------------------------------------------------


def test_images_agree_across_specs_dockerfile_and_values() -> None:
    pods = _pods()
    assert {role: _container(pod)["image"] for role, pod in pods.items()} == {
        "scheduler": f"headstart-worker:{_tag()}",
        "cpu": f"headstart-worker:{_tag()}",
        "gpu": f"headstart-worker:{_tag()}",
    }
    assert f"headstart-notebook:{_tag()}" == k8s.NOTEBOOK_IMAGE
    custom = k8s.gpu_worker_group(image="worker:custom")["spec"]["worker"]["spec"]
    assert _container(custom)["image"] == "worker:custom"
    values = _values()
    image = values["singleuser"]["image"]
    assert f"{image['name']}:{image['tag']}" == k8s.NOTEBOOK_IMAGE
    sidecar = _sidecar()
    assert sidecar["image"] == k8s.NOTEBOOK_IMAGE
    assert f"--JobRunner.kubernetes_image={k8s.WORKER_IMAGE}" in sidecar["args"]
    args = _dockerfile_args()
    tag = f"{args['HEADSTART_VERSION']}-tf{args['TENSORFLOW_VERSION']}"
    assert k8s.WORKER_IMAGE.split(":")[1] == k8s.NOTEBOOK_IMAGE.split(":")[1] == k8s.IMAGE_TAG == tag
    assert {"worker", "notebook"} <= set(_dockerfile_stages())


def test_env_is_the_same_on_every_dask_pod_and_the_service() -> None:
    envs = {role: _env(_container(pod)) for role, pod in _pods().items()}
    assert envs == {"scheduler": ENV, "cpu": ENV, "gpu": ENV}
    extra = {"HEADSTART_EXTRA": "1", "TF_CPP_MIN_LOG_LEVEL": "0"}
    spec, group = k8s.cluster_spec(env=extra), k8s.gpu_worker_group(env=extra)
    built = _env(_container(spec["spec"]["worker"]["spec"]))
    assert built == _env(_container(group["spec"]["worker"]["spec"])) == {**ENV, **extra}
    service = _env(_sidecar())
    for name in ("HEADSTART_HOME", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL"):
        assert service[name] == ENV[name], name
    user = _values()["singleuser"]["extraEnv"]
    assert user["KERAS_BACKEND"] == ENV["KERAS_BACKEND"]


def test_dockerfile_versions_match_pyproject() -> None:
    project = _pyproject()
    tensorflow = _pinned(project, "tensorflow-cpu")
    args = _dockerfile_args()
    assert args["TENSORFLOW_VERSION"] == tensorflow == k8s.TENSORFLOW_VERSION
    assert args["HEADSTART_VERSION"] == project["version"] == k8s.HEADSTART_VERSION
    stages = _dockerfile_stages()
    assert stages["worker"].startswith("FROM base AS worker")
    assert stages["notebook"].startswith("FROM base AS notebook")
    assert '"tensorflow[and-cuda]==${TENSORFLOW_VERSION}"' in stages["worker"]
    assert '"tensorflow-cpu==${TENSORFLOW_VERSION}"' in stages["notebook"]
    # Both flavours come from that one ARG, and the shared packages are held to the base's versions.
    text = (K8S / "Dockerfile").read_text()
    assert re.findall(r"tensorflow[\w\[\]-]*==\d", text) == []
    for stage in ("worker", "notebook"):
        assert "--constraint /etc/headstart/constraints.txt" in stages[stage], stage
    assert re.search(r"FROM python:\$\{PYTHON_VERSION\}\S* AS base", stages["base"])
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, args["PYTHON_VERSION"].split("."))) >= tuple(map(int, minimum.split(".")))


# --- the checked-in files ----------------------------------------------------------------------


@pytest.mark.parametrize("file_name", sorted(k8s.SPEC_FILES))
def test_checked_in_specs_are_what_the_code_writes(file_name: str, tmp_path: Path) -> None:
    k8s.main(["--write", str(tmp_path)])
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml"))
    assert written == sorted(k8s.SPEC_FILES)
    assert (K8S / file_name).read_text() == (tmp_path / file_name).read_text()
    assert _load(file_name) == k8s.SPEC_FILES[file_name]()
    k8s.main(["--write", str(tmp_path), "--image", "worker:custom", "--namespace", "ml"])
    custom = yaml.safe_load((tmp_path / file_name).read_text())
    assert custom["metadata"]["namespace"] == "ml"
    assert "worker:custom" in (tmp_path / file_name).read_text()


def _checked_in_pod(file_name: str, group: str) -> tuple[dict, dict]:
    """The pod spec and its one container of a group ("worker" or "scheduler") in a checked-in file."""
    spec = _load(file_name)["spec"]
    pod = spec[group]["spec"] if file_name == "dask-cluster.yaml" else spec["worker"]["spec"]
    return pod, _container(pod)


def test_the_checked_in_gpu_group_is_what_operators_apply() -> None:
    group = _load("dask-gpu-workers.yaml")
    assert (group["kind"], group["metadata"], group["spec"]["cluster"]) == (
        "DaskWorkerGroup",
        {"name": "headstart-gpu"},
        "headstart",
    )
    assert group["spec"]["worker"]["replicas"] == 1
    pod, container = _checked_in_pod("dask-gpu-workers.yaml", "worker")
    assert container["image"] == f"headstart-worker:{_tag()}"
    assert container["args"] == ["dask", "worker", "--resources", "GPU=1", *WORKER_ARGS]
    assert _env(container) == ENV
    assert container["resources"] == GPU_WORKER_RESOURCES
    assert (pod["nodeSelector"], pod["tolerations"]) == (GPU_NODES, GPU_TOLERATIONS)
    assert (pod["volumes"], container["volumeMounts"], pod["securityContext"]) == (
        STORE_VOLUMES,
        STORE_MOUNTS,
        RUN_AS,
    )


def test_the_checked_in_cluster_is_what_operators_apply() -> None:
    cluster = _load("dask-cluster.yaml")
    assert (cluster["kind"], cluster["metadata"], cluster["spec"]["idleTimeout"]) == (
        "DaskCluster",
        {"name": "headstart"},
        0,
    )
    assert cluster["spec"]["worker"]["replicas"] == 2
    pod, container = _checked_in_pod("dask-cluster.yaml", "worker")
    assert container["image"] == f"headstart-worker:{_tag()}"
    assert container["args"] == ["dask", "worker", *WORKER_ARGS]
    assert (_env(container), container["resources"]) == (ENV, CPU_WORKER_RESOURCES)
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert (pod["volumes"], container["volumeMounts"], pod["securityContext"]) == (
        STORE_VOLUMES,
        STORE_MOUNTS,
        RUN_AS,
    )
    pod, container = _checked_in_pod("dask-cluster.yaml", "scheduler")
    assert container["image"] == f"headstart-worker:{_tag()}"
    assert container["args"] == ["dask", "scheduler", "--host", "0.0.0.0"]
    assert (_env(container), container["resources"]) == (ENV, SCHEDULER_RESOURCES)
    assert "volumes" not in pod and pod["securityContext"] == RUN_AS
    service = cluster["spec"]["scheduler"]["service"]
    assert service["selector"] == {"dask.org/cluster-name": "headstart", "dask.org/component": "scheduler"}
    assert {p["name"]: p["port"] for p in service["ports"]} == {"tcp-comm": 8786, "http-dashboard": 8787}


def test_store_claim_is_shared_by_workers_and_service() -> None:
    [claim] = _documents("storage.yaml")
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["metadata"]["name"] == k8s.STORE_CLAIM
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    pods = _pods()
    for role in ("cpu", "gpu"):
        assert pods[role]["volumes"] == [
            {"name": "store", "persistentVolumeClaim": {"claimName": k8s.STORE_CLAIM}}
        ]
        assert _container(pods[role])["volumeMounts"] == [{"name": "store", "mountPath": k8s.STORE_PATH}]
    hub = _values()["hub"]
    [volume] = [v for v in hub["extraVolumes"] if v["name"] == "store"]
    assert volume["persistentVolumeClaim"]["claimName"] == k8s.STORE_CLAIM
    assert _sidecar()["volumeMounts"] == [{"name": "store", "mountPath": k8s.STORE_PATH}]
    # The service writes files that workers read, and the other way round: one user for both.
    assert _sidecar()["securityContext"]["runAsUser"] == pods["cpu"]["securityContext"]["runAsUser"]


# --- with an object store ------------------------------------------------------------------------

SECRET = "headstart-store-credentials"


def _helm_merge(base: Any, overlay: Any) -> Any:
    """Helm's merge of two values files: maps merge key by key, anything else (lists too) is replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {
            key: _helm_merge(base[key], overlay[key])
            if key in base and key in overlay
            else overlay.get(key, base.get(key))
            for key in {**base, **overlay}
        }
    return overlay


def _object_store_pods() -> dict[str, tuple[dict, list[dict]]]:
    """Every pod of the object-store deployment, as checked in: its spec's volumes and containers."""
    values = _helm_merge(_values(), _load("object-store/values.yaml"))
    hub, user = values["hub"], values["singleuser"]
    cluster = _load("object-store/dask-cluster.yaml")["spec"]
    gpu = _load("object-store/dask-gpu-workers.yaml")["spec"]["worker"]["spec"]
    user_volumes = user.get("storage", {}).get("extraVolumes", [])
    return {
        "hub": ({"volumes": hub.get("extraVolumes", [])}, hub["extraContainers"]),
        "user": ({"volumes": user_volumes}, [{"name": "notebook", "env": _listed(user.get("extraEnv", {}))}]),
        "scheduler": (cluster["scheduler"]["spec"], cluster["scheduler"]["spec"]["containers"]),
        "cpu": (cluster["worker"]["spec"], cluster["worker"]["spec"]["containers"]),
        "gpu": (gpu, gpu["containers"]),
    }


def _listed(extra_env: dict) -> list[dict]:
    """Zero to JupyterHub's `extraEnv` map as a container's env list."""
    return [{"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in extra_env.items()]


def _claims(pod: dict) -> set[str]:
    return {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod.get("volumes", [])
        if "persistentVolumeClaim" in v
    }


def _has_secret(container: dict, name: str) -> bool:
    sources = [item.get("secretRef", {}).get("name") for item in container.get("envFrom", [])]
    env = container.get("env", [])
    keys = [
        item.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
        for item in env
        if isinstance(item, dict)
    ]
    return name in sources or name in keys


def test_the_object_store_values_are_what_the_code_writes() -> None:
    assert _load("object-store/values.yaml") == k8s.object_store_values(_values())


def test_with_an_object_store_no_pod_mounts_a_shared_claim() -> None:
    pods = _object_store_pods()
    assert {role: _claims(pod) for role, (pod, _) in pods.items()} == {
        "hub": {"headstart-home"},  # the service's own: its database
        "user": set(),
        "scheduler": set(),
        "cpu": set(),
        "gpu": set(),
    }
    documents = {doc["kind"]: doc for doc in _documents("object-store/storage.yaml")}
    assert documents["PersistentVolumeClaim"]["metadata"]["name"] == "headstart-home"
    assert documents["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert documents["Secret"]["metadata"]["name"] == SECRET
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(documents["Secret"]["stringData"])
    for role in ("cpu", "gpu"):
        pod, [container] = pods[role]
        assert pod["volumes"] == [{"name": "cache", "emptyDir": {}}]
        assert _env(container)["HEADSTART_STORE_CACHE"] == container["volumeMounts"][0]["mountPath"]
        assert "HEADSTART_HOME" not in _env(container)  # the service's home is nowhere near
    [service] = [c for c in pods["hub"][1] if c["name"] == "headstart"]
    assert "--Catalog.store_url=s3://headstart-artifacts/catalog" in service["args"]
    assert f"--JobRunner.kubernetes_store_secret={SECRET}" in service["args"]


def test_user_pods_mount_neither_the_store_nor_the_catalogs_database() -> None:
    for values in (_values(), _helm_merge(_values(), _load("object-store/values.yaml"))):
        user = values["singleuser"]
        volumes = user.get("storage", {}).get("extraVolumes", [])
        claims = {v.get("persistentVolumeClaim", {}).get("claimName") for v in volumes}
        assert not claims & {k8s.STORE_CLAIM, "headstart-home"}
        assert not any(
            key.startswith(("AWS_", "HEADSTART_HOME", "HEADSTART_STORE")) for key in user["extraEnv"]
        )
        assert "extraContainers" not in user and "initContainers" not in user


def test_only_the_service_and_the_workers_get_the_stores_credentials() -> None:
    holders = {
        (role, container["name"])
        for role, (_, containers) in _object_store_pods().items()
        for container in containers
        if _has_secret(container, SECRET)
    }
    assert holders == {("hub", "headstart"), ("cpu", "worker"), ("gpu", "worker")}
    # The service's own cluster gets them the same way, when c.JobRunner.kubernetes_store_secret says so.
    built = k8s.cluster_spec(store_claim=None, store_secret=SECRET)
    assert _has_secret(_container(built["spec"]["worker"]["spec"]), SECRET)
    assert not _has_secret(_container(built["spec"]["scheduler"]["spec"]), SECRET)
    with pytest.raises(ValueError, match="not both"):
        k8s.cluster_spec(store_secret=SECRET)


def test_rbac_lets_the_service_and_users_drive_the_dask_operator() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for doc in _documents("rbac.yaml")}
    [role] = [doc for (kind, _), doc in docs.items() if kind == "Role"]
    rules = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for resource in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
        assert {"get", "list", "watch", "create", "patch", "delete"} <= rules[
            ("kubernetes.dask.org", resource)
        ]
    for resource in ("pods", "services"):
        assert {"get", "list", "watch"} <= rules[("", resource)]
    [binding] = [doc for (kind, _), doc in docs.items() if kind == "RoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    bound = {subject["name"] for subject in binding["subjects"] if subject["kind"] == "ServiceAccount"}
    user_account = _values()["singleuser"]["serviceAccountName"]
    assert bound == {"hub", user_account}
    assert ("ServiceAccount", user_account) in docs


def test_values_wire_the_catalog_service_like_the_one_machine_hub() -> None:
    hub = _values()["hub"]
    read, write = "custom:headstart:read", "custom:headstart:write"
    access = "access:services!service=headstart"
    assert set(hub["config"]["JupyterHub"]["custom_scopes"]) == {read, write}
    assert {access, read, write} <= set(hub["loadRoles"]["user"]["scopes"])
    assert {access, read, write} <= set(hub["config"]["KubeSpawner"]["server_token_scopes"])
    service = hub["services"]["headstart"]
    assert service["oauth_client_allowed_scopes"] == [read, write]
    port = int(service["url"].rsplit(":", 1)[1])
    assert [p["port"] for p in hub["service"]["extraPorts"] if p["name"] == "headstart"] == [port]
    sidecar = _sidecar()
    assert [p["containerPort"] for p in sidecar["ports"]] == [port]
    assert _env(sidecar)["JUPYTERHUB_SERVICE_URL"].endswith(f":{port}")
    assert _env(sidecar)["JUPYTERHUB_SERVICE_PREFIX"] == "/services/headstart/"
    [token] = [item for item in sidecar["env"] if item["name"] == "JUPYTERHUB_API_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["key"] == "hub.services.headstart.apiToken"
    assert "--JobRunner.cluster=kubernetes" in sidecar["args"]
    ingress_ports = {p["port"] for rule in hub["networkPolicy"]["ingress"] for p in rule["ports"]}
    assert port in ingress_ports
    assert _values()["singleuser"]["extraEnv"]["HEADSTART_URL"].endswith("/services/headstart/")


# --- kube_cluster, against a stand-in for the operator's KubeCluster ---------------------------


class _FakeKubeCluster:
    """Records what kube_cluster asks of KubeCluster; add_worker_group raises `error` if set."""

    error: Exception | None = None

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.name = kwargs["custom_cluster_spec"]["metadata"]["name"]
        self.groups: list[tuple[str, dict]] = []
        self.asked: list[tuple[str, dict]] = []  # every add_worker_group call, refused or not

    def add_worker_group(self, name: str, *, custom_spec: dict) -> None:
        self.asked.append((name, custom_spec))
        if self.error is not None:
            raise self.error
        self.groups.append((name, custom_spec))


@pytest.fixture
def fake_kube_cluster(monkeypatch: pytest.MonkeyPatch) -> type[_FakeKubeCluster]:
    import dask_kubernetes.operator

    class Fake(_FakeKubeCluster):
        pass

    monkeypatch.setattr(dask_kubernetes.operator, "KubeCluster", Fake)
    return Fake


def test_kube_cluster_creates_from_the_spec_and_adds_the_gpu_group(
    fake_kube_cluster: type[_FakeKubeCluster],
) -> None:
    spec, group = k8s.cluster_spec(namespace="ml"), k8s.gpu_worker_group(namespace="ml")
    cluster = k8s.kube_cluster(spec, group)
    assert cluster.kwargs["custom_cluster_spec"] == spec
    assert cluster.kwargs["namespace"] == "ml"
    # The cluster must outlive the service, which re-attaches to its jobs after a restart.
    assert cluster.kwargs["shutdown_on_close"] is False
    # KubeCluster names the group `<cluster>-<name>`: `headstart-gpu`, as in the checked-in file.
    assert cluster.groups == [("gpu", group["spec"]["worker"])]
    assert f"{cluster.name}-{cluster.groups[0][0]}" == group["metadata"]["name"]
    with pytest.raises(ValueError, match="belongs to"):
        k8s.kube_cluster(k8s.cluster_spec("other"), group)


def test_kube_cluster_reattaches_to_an_existing_gpu_group_only(
    fake_kube_cluster: type[_FakeKubeCluster],
) -> None:
    import httpx
    import kr8s

    def server_error(status: int) -> kr8s.ServerError:
        response = httpx.Response(status, request=httpx.Request("POST", "http://k8s/apis"))
        return kr8s.ServerError(f"status {status}", response=response)

    fake_kube_cluster.error = server_error(409)
    spec, group = k8s.cluster_spec(), k8s.gpu_worker_group()
    cluster = k8s.kube_cluster(spec, group)
    # The group was asked for, the operator said it exists, and the cluster is used as it is.
    assert cluster.asked == [("gpu", group["spec"]["worker"])] and cluster.groups == []
    assert cluster.kwargs["custom_cluster_spec"] == spec
    fake_kube_cluster.error = server_error(403)
    with pytest.raises(kr8s.ServerError):
        k8s.kube_cluster(k8s.cluster_spec(), k8s.gpu_worker_group())


@pytest.mark.parametrize("secret", ["", SECRET])
def test_the_services_cluster_takes_the_store_as_the_runner_says(
    fake_kube_cluster: type[_FakeKubeCluster], secret: str
) -> None:
    from headstart.extension.jobs.cluster import make_cluster
    from headstart.extension.jobs.dask_runner import DaskRunner

    runner = DaskRunner(cluster="kubernetes", kubernetes_store_secret=secret)
    cluster, address = make_cluster(runner)
    assert address is None
    for pod in (
        cluster.kwargs["custom_cluster_spec"]["spec"]["worker"]["spec"],
        cluster.groups[0][1]["spec"],
    ):
        assert _has_secret(_container(pod), SECRET) == bool(secret)
        assert _claims(pod) == (set() if secret else {k8s.STORE_CLAIM})
