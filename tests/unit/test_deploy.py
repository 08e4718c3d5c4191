"""Deployment files: docker-compose.yml and the kustomize tree under deploy/k8s.

Neither Docker nor kubectl/kustomize is needed. The compose file is checked structurally. The
Kubernetes manifests are assembled the way kustomize would (resources, configMapGenerator,
strategic-merge patches, namespace, labels; a deliberately small subset) and every resulting
object is validated against the Kubernetes OpenAPI schemas with kubernetes_validate.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from pydantic import BaseModel

from tapeline.config import ProcessorSettings, Settings
from tests.support.data import REPO_ROOT
from tools.simulator import SimulatorSettings

REPO = REPO_ROOT
COMPOSE_FILE = REPO / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
# Every overlay is built and checked; dev and prod must exist (see test_overlays_differ_where_they_should).
OVERLAYS = {p.parent.name: p.parent for p in sorted((K8S / "overlays").glob("*/kustomization.yaml"))}
TARGETS = {"base": BASE, **OVERLAYS}

IMAGE_REPO = "ghcr.io/tapeline/tapeline"
APP_UID = 10001  # the Dockerfile's USER
METRICS_PORT = 9000
QUERY_PORT = 50051
SERVICE_MODULES = {"services.connector", "services.processor", "services.query", "services.signals"}
DEV_MODULES = {"simulator": "tools.simulator"}  # dev tools run from the image's dev stage
# Oldest Kubernetes the manifests must work on (native gRPC probes are GA since 1.27) and the
# newest schema kubernetes_validate ships.
K8S_VERSIONS = ["1.30.0", latest_version()]


# --- helpers --------------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def settings_field(env_name: str) -> None:
    """Fail unless TAPELINE_A__B names a field of tapeline.config.Settings (catches typos)."""
    assert env_name.startswith("TAPELINE_"), env_name
    model: type[BaseModel] = Settings
    parts = env_name.removeprefix("TAPELINE_").lower().split("__")
    for depth, part in enumerate(parts):
        assert part in model.model_fields, f"{env_name}: {part!r} is not a field of {model.__name__}"
        annotation = model.model_fields[part].annotation
        if depth < len(parts) - 1:
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel), (
                f"{env_name}: {part!r} is not a nested settings group"
            )
            model = annotation


def parse_settings(env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a process with exactly these TAPELINE_* variables would see them."""
    for name in list(os.environ):
        if name.upper().startswith("TAPELINE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("TAPELINE_") and not name.startswith("TAPELINE_SIMULATOR__"):  # the simulator's own
            settings_field(name)
            if value is not None:
                monkeypatch.setenv(name, str(value))
    return Settings()


# --- docker-compose.yml ---------------------------------------------------------------------

TAPELINE_SERVICES = ["migrate", "connector-binance-usdm", "processor", "assets", "query", "signals", "simulator"]
KAFKA_CLIENTS = ["connector-binance-usdm", "processor", "assets", "signals"]
CLICKHOUSE_CLIENTS = ["migrate", "processor", "assets", "query"]
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as f:
        return yaml.safe_load(f)


def service_env(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", "PASSTHROUGH"]
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: (None if value is None else str(value)) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: spec or {"condition": "service_started"} for name, spec in deps.items()}


def has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable", False)


def test_compose_has_all_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"kafka", "clickhouse", *TAPELINE_SERVICES}


def test_compose_kafka_is_official_kraft_single_node(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"]), kafka["image"]
    env = service_env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node_id}@kafka:9093"
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert f"{controller}://" in env["KAFKA_LISTENERS"]
    for name, value in env.items():
        if name.endswith(("REPLICATION_FACTOR", "MIN_ISR")):
            assert value == "1", f"{name}={value}: a single broker needs 1"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_compose_clickhouse(compose: dict[str, Any]) -> None:
    ch = compose["services"]["clickhouse"]
    assert re.fullmatch(r"clickhouse/clickhouse-server:2[56]\.\d+(\.\d+)*", ch["image"]), ch["image"]
    assert ch["ulimits"]["nofile"]["soft"] >= 262144
    assert any(str(v).endswith(":/var/lib/clickhouse") for v in ch["volumes"])
    assert "SELECT 1" in " ".join(ch["healthcheck"]["test"])


def kafka_internal_addresses(compose: dict[str, Any]) -> set[str]:
    """host:port of the broker's advertised listeners that other containers can reach."""
    advertised = service_env(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    addresses = {listener.split("://", 1)[1] for listener in advertised.split(",")}
    return {a for a in addresses if a.split(":")[0] == "kafka"}


@pytest.mark.parametrize("name", TAPELINE_SERVICES)
def test_compose_tapeline_service(compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = compose["services"][name]
    build = service.get("build")
    assert build == "." or (isinstance(build, dict) and build.get("context") == "."), f"{name}: build"
    if name in DEV_MODULES:
        assert build.get("target") == "dev", f"{name}: a dev tool needs the image's dev stage"

    command = service["command"]
    if name == "migrate":
        assert command == ["tapeline", "migrate"]
    else:
        assert command[:2] == ["python", "-m"]
        assert command[2] == DEV_MODULES.get(name) or command[2] in SERVICE_MODULES, f"{name}: {command}"

    # One shared anchor for the common environment: every service carries all of it.
    env = service_env(service)
    shared = compose["x-tapeline-env"]
    assert {k: str(v) for k, v in shared.items()}.items() <= env.items(), f"{name}: lacks x-tapeline-env"

    if name in KAFKA_CLIENTS:
        assert env["TAPELINE_KAFKA__BOOTSTRAP_SERVERS"] in kafka_internal_addresses(compose)
    if name in CLICKHOUSE_CLIENTS:
        assert env["TAPELINE_CLICKHOUSE__DSN"] == "http://clickhouse:8123"
        assert env["TAPELINE_CLICKHOUSE__PASSWORD"] is not None

    settings = parse_settings(env, monkeypatch)  # every name is a real setting and every value parses
    assert settings.metrics.port == METRICS_PORT
    if name in ("processor", "assets"):
        assert settings.processor.serve_queries is False
        assert {"1h", "1d"} <= set(settings.processor.intervals), "the daily views need 1h and 1d bars"
        # the bar stage and the asset stage scale apart: one stage each, separate consumer groups
        assert settings.processor.stages == (["bars"] if name == "processor" else ["assets", "signals"])
    if name == "assets":
        assert settings.processor.app_id != ProcessorSettings().app_id
    if name == "query":
        assert settings.query.host == "0.0.0.0"
        assert f"{settings.query.port}:{settings.query.port}" in service["ports"]
    if name == "connector-binance-usdm":
        assert settings.connector.venue == "binance-usdm"
        # Pass-through from the shell (null) so the default is "unset", never an empty URL.
        assert "TAPELINE_CONNECTOR__WS_BASE_URL" in env and env["TAPELINE_CONNECTOR__WS_BASE_URL"] is None
    if name == "simulator":
        assert service["profiles"] == ["sim"]
        for key, value in env.items():
            if key.startswith("TAPELINE_SIMULATOR__"):
                monkeypatch.setenv(key, str(value))
        assert SimulatorSettings().host == "0.0.0.0"
    else:
        assert not service.get("profiles"), f"{name} must run in the default profile"


def test_compose_depends_on(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, spec in depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec["condition"] in DEPENDS_CONDITIONS, f"{name} -> {dep}: {spec['condition']}"
            if spec["condition"] == "service_healthy":
                assert has_healthcheck(services[dep]), f"{name} waits for {dep} to be healthy; it has no healthcheck"
            if services[dep].get("profiles") and not service.get("profiles"):
                assert spec.get("required") is False, f"{name} would need the {services[dep]['profiles']} profile"
    assert depends_on(services["migrate"])["clickhouse"]["condition"] == "service_healthy"
    for name in ("processor", "assets", "query"):
        assert depends_on(services[name])["migrate"]["condition"] == "service_completed_successfully"
    for name in KAFKA_CLIENTS:
        assert depends_on(services[name])["kafka"]["condition"] == "service_healthy"


# --- kustomize tree ---------------------------------------------------------------------------


def kustomization(kdir: Path) -> dict[str, Any]:
    path = kdir / "kustomization.yaml"
    assert path.is_file(), f"{path} missing"
    (doc,) = load_docs(path)
    assert doc["kind"] == "Kustomization"
    return doc


def referenced_paths(kdir: Path) -> list[Path]:
    """Every file or directory a kustomization.yaml names."""
    k = kustomization(kdir)
    refs = [*k.get("resources", []), *k.get("patchesStrategicMerge", [])]
    refs += [p["path"] for p in [*k.get("patches", []), *k.get("patchesJson6902", [])] if "path" in p]
    for gen in [*k.get("configMapGenerator", []), *k.get("secretGenerator", [])]:
        refs += gen.get("envs", [])
        refs += [f.split("=", 1)[-1] for f in gen.get("files", [])]
    return [(kdir / ref).resolve() for ref in refs]


def strategic_merge(base: Any, patch: Any) -> Any:
    """Kubernetes strategic merge, simplified: maps merge, lists of named items merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    lists = isinstance(base, list) and isinstance(patch, list)
    if lists and all(isinstance(item, dict) and "name" in item for item in [*base, *patch]):
        merged = copy.deepcopy(base)
        index = {item["name"]: i for i, item in enumerate(merged)}
        for item in patch:
            if item["name"] in index:
                merged[index[item["name"]]] = strategic_merge(merged[index[item["name"]]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def read_env_file(path: Path) -> dict[str, str]:
    data = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: {line!r} is not KEY=VALUE"
            data[key] = value
    return data


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


def build(kdir: Path) -> list[dict[str, Any]]:
    """The objects `kustomize build kdir` would emit (minus generated-name hashes)."""
    k = kustomization(kdir)
    docs: list[dict[str, Any]] = []
    for ref in k.get("resources", []):
        path = (kdir / ref).resolve()
        assert path.exists(), f"{kdir}: resource {ref} missing"
        docs += build(path) if path.is_dir() else load_docs(path)

    for gen in k.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env_file in gen.get("envs", []):
            data |= read_env_file(kdir / env_file)
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        for spec in gen.get("files", []):
            key, _, file = spec.rpartition("=")
            data[key or Path(file).name] = (kdir / file).read_text()
        existing = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == gen["name"]]
        behavior = gen.get("behavior", "create")
        if behavior == "create":
            assert not existing, f"{kdir}: ConfigMap {gen['name']} already exists (use behavior: merge)"
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
        else:
            assert len(existing) == 1, f"{kdir}: nothing to {behavior} for ConfigMap {gen['name']}"
            existing[0]["data"] = (existing[0].get("data", {}) if behavior == "merge" else {}) | data

    patches = [p if isinstance(p, dict) else {"path": p} for p in k.get("patchesStrategicMerge", [])]
    for spec in [*patches, *k.get("patches", [])]:
        patch_docs = load_docs(kdir / spec["path"]) if "path" in spec else list(yaml.safe_load_all(spec["patch"]))
        if any(isinstance(doc, list) for doc in patch_docs):  # JSON6902: only check it parses
            assert all(isinstance(op, dict) and "op" in op and "path" in op for op in patch_docs[0])
            continue
        for patch in patch_docs:
            targets = [
                d for d in docs if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]
            ]
            assert len(targets) == 1, f"{kdir}: patch {patch['kind']}/{patch['metadata']['name']} has no target"
            docs[docs.index(targets[0])] = strategic_merge(targets[0], patch)

    for doc in docs:
        if "namespace" in k and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = k["namespace"]
        for label in k.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
            template = doc.get("spec", {}).get("template")
            if label.get("includeTemplates") and template is not None:
                template.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    return docs


@pytest.fixture(scope="module")
def builds() -> dict[str, list[dict[str, Any]]]:
    return {name: build(kdir) for name, kdir in TARGETS.items()}


def objects(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {}
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            specs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc["spec"]["template"]
        elif doc["kind"] == "CronJob":
            specs[f"CronJob/{doc['metadata']['name']}"] = doc["spec"]["jobTemplate"]["spec"]["template"]
    return specs


QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(value: str | int | float) -> float:
    match = QUANTITY.match(str(value))
    assert match, f"bad quantity {value!r}"
    return float(match[1]) * FACTORS[match[2]]


def all_kustomization_dirs() -> list[Path]:
    return sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


@pytest.mark.parametrize("kdir", all_kustomization_dirs(), ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_references_exist(kdir: Path) -> None:
    refs = referenced_paths(kdir)
    for path in refs:
        assert path.exists(), f"{kdir / 'kustomization.yaml'} names {path}, which does not exist"
    # And nothing in the directory is silently left out.
    for path in kdir.glob("*.y*ml"):
        if path.name != "kustomization.yaml":
            assert path.resolve() in refs, f"{path} is not referenced by {kdir / 'kustomization.yaml'}"


def test_kustomization_dirs_are_the_expected_ones() -> None:
    assert set(all_kustomization_dirs()) == set(TARGETS.values()), "a kustomization outside base/ and overlays/*/"
    assert {"dev", "prod"} <= OVERLAYS.keys()
    base = kustomization(BASE)
    assert "namespace" not in base, "the base leaves the namespace to the overlays"
    assert not objects(build(BASE), "Namespace")
    part_of = [label["pairs"].get("app.kubernetes.io/part-of") for label in base.get("labels", [])]
    part_of.append(base.get("commonLabels", {}).get("app.kubernetes.io/part-of"))
    assert "tapeline" in part_of


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_manifests_validate_against_kubernetes_schema(
    builds: dict[str, list[dict[str, Any]]], target: str, version: str
) -> None:
    docs = builds[target]
    assert docs
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            errors.append(f"{doc['kind']}/{doc['metadata'].get('name')}: {where}: {e.message}")
    assert not errors, "\n".join(errors)


def test_patch_files_validate_as_far_as_they_are_full_objects() -> None:
    """Strategic-merge patches alone: identify their target and fail the schema only for fields they
    leave out on purpose ("required"). Merged into their target they are validated in full above."""
    for kdir in all_kustomization_dirs():
        k = kustomization(kdir)
        paths = [p["path"] for p in k.get("patches", []) if "path" in p] + k.get("patchesStrategicMerge", [])
        for path in paths:
            for doc in load_docs(kdir / path):
                if isinstance(doc, list):  # JSON6902 operations: parsing is all we check
                    assert all(isinstance(op, dict) and {"op", "path"} <= op.keys() for op in doc), path
                    continue
                assert {"apiVersion", "kind", "metadata"} <= doc.keys() and doc["metadata"].get("name"), path
                try:
                    kubernetes_validate.validate(doc, latest_version(), strict=True)
                except kubernetes_validate.ValidationError as e:
                    assert e.validator == "required", f"{kdir / path}: {e.message}"


@pytest.mark.parametrize("target", TARGETS)
def test_workloads_are_hardened_and_bounded(builds: dict[str, list[dict[str, Any]]], target: str) -> None:
    docs = builds[target]
    config_maps = objects(docs, "ConfigMap")
    secrets = objects(docs, "Secret")
    specs = pod_specs(docs)
    assert specs
    for workload, template in specs.items():
        pod = template["spec"]
        psc = pod.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, f"{workload}: runAsNonRoot"
        assert psc.get("runAsUser") == APP_UID, f"{workload}: runAsUser"
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{workload}: seccompProfile"
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{workload}/{container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(kind, {}), f"{where}: no {kind}.{resource}"
            for resource in ("cpu", "memory"):
                assert quantity(resources["requests"][resource]) <= quantity(resources["limits"][resource]), where
            csc = container.get("securityContext", {})
            assert csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
            assert csc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
            assert "ALL" in csc.get("capabilities", {}).get("drop", []), f"{where}: capabilities.drop"
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes.get(mounts.get("/tmp"), {}), f"{where}: /tmp must be an emptyDir"
            for name in mounts.values():
                assert name in volumes, f"{where}: mounts undefined volume {name}"

            image, _, tag = container["image"].rpartition(":")
            assert image == IMAGE_REPO and tag and tag != "latest", f"{where}: image {container['image']}"
            assert container.get("imagePullPolicy") == "IfNotPresent", where
            assert "command" not in container, f"{where}: use args; command would replace the tini entrypoint"

            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, f"{where}: unknown ConfigMap"
                if "secretRef" in source:
                    ref = source["secretRef"]
                    assert ref["name"] in secrets or ref.get("optional") is True, f"{where}: Secret ref"
            for var in container.get("env", []):
                settings_field(var["name"])
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets or ref.get("optional") is True, f"{where}: {var['name']}"


def deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    deployments = objects(docs, "Deployment")
    assert name in deployments, f"no Deployment {name}; have {sorted(deployments)}"
    return deployments[name]


def only_container(obj: dict[str, Any]) -> dict[str, Any]:
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("target", TARGETS)
def test_services_and_their_wiring(
    builds: dict[str, list[dict[str, Any]]], target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = builds[target]
    config = objects(docs, "ConfigMap")["tapeline-config"]["data"]
    settings = parse_settings(config, monkeypatch)
    assert settings.kafka.bootstrap_servers and "127.0.0.1" not in settings.kafka.bootstrap_servers
    assert settings.clickhouse.dsn.startswith(("http://", "https://")), "processor and query need a server"
    assert settings.processor.serve_queries is False
    assert {"1h", "1d"} <= set(settings.processor.intervals), "the daily views need 1h and 1d bars"
    assert settings.query.host == "0.0.0.0"
    assert settings.metrics.port == METRICS_PORT

    modules = {}
    for name, obj in objects(docs, "Deployment").items():
        selector = obj["spec"]["selector"]["matchLabels"]
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{name}: selector does not match its pods"
        container = only_container(obj)
        args = container["args"]
        assert args[:2] == ["python", "-m"], f"{name}: {args}"
        modules[args[2].removeprefix("services.")] = name
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert ports.get("metrics") == settings.metrics.port, f"{name}: metrics port"
        assert annotations.get("prometheus.io/scrape") == "true", name
        assert annotations.get("prometheus.io/port") == str(settings.metrics.port), name
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, f"{name}: no {probe}"
            http = container[probe].get("httpGet")
            if http:  # the health endpoints, not /metrics (which answers even when every loop is dead)
                assert http["path"] == ("/readyz" if probe == "readinessProbe" else "/healthz"), f"{name}: {probe}"
    assert set(modules) == {"connector", "processor", "query", "signals"}
    assert deployment(docs, "tapeline-connector-binance-usdm")
    assert deployment(docs, "tapeline-processor")["spec"]["replicas"] == 1
    stage_env = {}
    for name in ("tapeline-processor", "tapeline-asset-processor"):
        env = {e["name"]: e.get("value") for e in only_container(deployment(docs, name)).get("env", [])}
        stage_env[name] = (env.get("TAPELINE_PROCESSOR__STAGES"), env.get("TAPELINE_PROCESSOR__APP_ID"))
    assert stage_env["tapeline-processor"][0] == "bars"
    assert stage_env["tapeline-asset-processor"][0] == "assets,signals"
    assert stage_env["tapeline-asset-processor"][1] not in (None, settings.processor.app_id), "its own group"
    assert deployment(docs, "tapeline-query")["spec"]["replicas"] >= 2

    job = objects(docs, "Job")["tapeline-migrate"]
    assert only_container(job)["args"] == ["tapeline", "migrate"]

    if target != "base":
        namespaces = set(objects(docs, "Namespace"))
        assert len(namespaces) == 1
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") in namespaces, f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("target", TARGETS)
def test_query_grpc_probes_match_service(builds: dict[str, list[dict[str, Any]]], target: str) -> None:
    docs = builds[target]
    query = deployment(docs, "tapeline-query")
    container = only_container(query)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == QUERY_PORT

    service = objects(docs, "Service")["tapeline-query"]
    (port,) = service["spec"]["ports"]
    assert port["name"] == "grpc" and port.get("appProtocol") == "grpc"
    target_port = port["targetPort"]
    target_port = ports[target_port] if isinstance(target_port, str) else target_port

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "grpc" in container[probe], f"query {probe} must be a native gRPC probe"
        assert container[probe]["grpc"]["port"] == target_port, probe

    # The Service selects the query pods and nothing else.
    selector = service["spec"]["selector"]
    for name, template in pod_specs(docs).items():
        selected = selector.items() <= template["metadata"]["labels"].items()
        assert selected == (name == "Deployment/tapeline-query"), name


def test_overlays_differ_where_they_should(builds: dict[str, list[dict[str, Any]]]) -> None:
    def config(target: str) -> dict[str, str]:
        return objects(builds[target], "ConfigMap")["tapeline-config"]["data"]

    assert set(objects(builds["dev"], "Namespace")) == {"tapeline-dev"}
    assert set(objects(builds["prod"], "Namespace")) == {"tapeline"}
    for key in ("TAPELINE_KAFKA__BOOTSTRAP_SERVERS", "TAPELINE_CLICKHOUSE__DSN"):
        assert config("dev")[key] != config("base")[key]
        assert ".svc.cluster.local" in config("dev")[key]
    base_query = only_container(deployment(builds["base"], "tapeline-query"))
    prod_query = deployment(builds["prod"], "tapeline-query")
    assert prod_query["spec"]["replicas"] > deployment(builds["base"], "tapeline-query")["spec"]["replicas"]
    assert only_container(prod_query)["resources"] != base_query["resources"]
    assert only_container(prod_query)["image"] == base_query["image"], "the patch must not drop fields"
