"""deploy/ checked without a container engine: the Dockerfile (hadolint), docker-compose.yml (the
Compose specification's schema), deploy/k8s rendered by kustomize (the Kubernetes schemas of
`K8S_VERSION`), and paysync's own rules over all of them:

- every environment variable a container is given is read by what runs in it, and documented in
  docs/settings.md; every setting without a default is given;
- no secret value is committed: credentials come from `secretKeyRef` (Kubernetes) or `${VAR:?}`
  (compose, besides its documented local-only database password);
- every image's command is a script its package declares; every service has a target, a
  HEALTHCHECK, probes on /readyz and /healthz, requests and limits, a PodDisruptionBudget, waits
  for the migrations, and has no more consumer replicas than its topic has partitions;
- /metrics and the consumers are exposed by no Service, the notifier only inside.

Each check is a function returning its findings; for each, a test breaks a copy of the file it
reads (in tmp_path) and shows the finding.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_cli.settings import ReplaySettings
from paysync_core import topics
from paysync_core.server import ServerSettings
from paysync_core.settings import CommonSettings
from paysync_dev import go_tools
from paysync_notifier.settings import NotifierSettings
from paysync_reconciler.settings import ReconcilerSettings
from paysync_status_projector.settings import StatusProjectorSettings
from paysync_webhook_ingest.settings import WebhookIngestSettings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KUSTOMIZE = ("kustomize", "sigs.k8s.io/kustomize/kustomize/v5", "v5.8.0")  # the Makefile installs the same
#: The Kubernetes version the manifests are written for (kubernetes-validate ships its schemas).
K8S_VERSION = "1.33.0"
OVERLAYS = ("base", "overlays/example")

#: What each image runs reads these settings classes (and `CommonSettings`, `PAYSYNC_`).
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "webhook-ingest": (WebhookIngestSettings, ServerSettings),
    "status-projector": (StatusProjectorSettings, ServerSettings),
    "reconciler": (ReconcilerSettings, ServerSettings),
    "notifier": (NotifierSettings, ServerSettings),
    "api-gateway": (ApiGatewaySettings, ServerSettings),
    "cli": (ReplaySettings,),
}
SERVICES = ("webhook-ingest", "status-projector", "reconciler", "notifier", "api-gateway")
#: The topic each service's consumer group reads, whose partitions bound its useful replicas.
CONSUMED = {
    "webhook-ingest": topics.WEBHOOKS_RAW,
    "status-projector": topics.PAYMENT_OBSERVATIONS,
    "reconciler": topics.RECONCILE_REQUESTS,
    "notifier": topics.PAYMENT_STATUS,
}
#: Services something calls over HTTP; the others get no Service at all.
CALLED = {"webhook-ingest", "api-gateway", "notifier"}
#: Demo values docker-compose.yml may hold (documented there and in the README as local-only).
COMPOSE_DEMO_VALUES = {"postgresql+asyncpg://paysync:paysync@postgres:5432/paysync", "paysync"}
SECRET_PATTERNS = (
    re.compile(r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{8,}"),  # Stripe and Paystack keys
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{8,}"),  # webhook signing secrets
    re.compile(r"\bpsk_[A-Za-z0-9_]{8,}"),  # paysync API keys
    re.compile(r"\b[A-Za-z0-9_-]{43}="),  # a Fernet key
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # a password inside a URL
)


# -- what the settings read ------------------------------------------------------------------------


def env_names(cls: type[BaseSettings]) -> Iterator[tuple[str, Any]]:
    """(environment variable, field) of every setting of `cls`, nested sections included."""
    prefix = cls.model_config.get("env_prefix", "")
    for name, field in cls.model_fields.items():
        factory = field.default_factory
        if isinstance(factory, type) and issubclass(factory, BaseSettings):
            yield from env_names(factory)
        else:
            yield f"{prefix}{name}".upper(), field


def reads(image: str) -> dict[str, Any]:
    """Every variable the program of `image` reads, with its field."""
    return {n: f for cls in (CommonSettings, *SETTINGS[image]) for n, f in env_names(cls)}


def secret_names() -> set[str]:
    """Variables that hold credentials: every SecretStr setting, and the database URL (its password)."""
    names = {"PAYSYNC_DATABASE_URL"}
    for image in SETTINGS:
        names |= {n for n, f in reads(image).items() if f.annotation in (SecretStr, SecretStr | None)}
    return names


def documented(settings_md: Path) -> set[str]:
    """The variables docs/settings.md has a row for."""
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", settings_md.read_text(), re.M))


def undocumented_settings(settings_md: Path) -> list[str]:
    """Variables some image reads that docs/settings.md has no row for."""
    known = documented(settings_md)
    return sorted({name for image in SETTINGS for name in reads(image) if name not in known})


# -- Kubernetes --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kustomize() -> Path:
    return go_tools.ensure_installed(*KUSTOMIZE)


def render(kustomize: Path, directory: Path) -> list[dict[str, Any]]:
    """`kustomize build directory`, as objects."""
    done = subprocess.run(
        [str(kustomize), "build", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def k8s_schema_findings(docs: list[dict[str, Any]]) -> list[str]:
    """Objects the Kubernetes schemas refuse (strict: unknown fields too)."""
    findings = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            findings.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    return findings


def workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) of every container and initContainer of Deployments and Jobs."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                yield doc, container


def image_target(image: str) -> str:
    """The Dockerfile target of an image name: `registry/paysync/notifier:1` or `paysync-notifier`."""
    name = image.rsplit("/", 1)[-1].split(":")[0]
    return name.removeprefix("paysync-")


def container_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every variable the container gets: its `env` entries, and each key of its envFrom ConfigMaps."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    given: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        for key, value in maps[source["configMapRef"]["name"]].items():
            given[key] = {"name": key, "value": value, "configMap": source["configMapRef"]["name"]}
    for entry in container.get("env", []):
        given[entry["name"]] = entry
    return given


def env_findings_k8s(docs: list[dict[str, Any]], settings_md: Path) -> list[str]:
    """Variables read by nothing or undocumented; settings without a default left unset."""
    findings, known = [], documented(settings_md)
    for workload, container in workloads(docs):
        where = f"{workload['metadata']['name']}/{container['name']}"
        readable = reads(image_target(container["image"]))
        shell = " ".join(container.get("command", []) + container.get("args", []))
        for name in container_env(docs, container):
            if name in readable:
                if name not in known:
                    findings.append(f"{where}: {name} is not documented in docs/settings.md")
            elif f"${name}" not in shell and f"$({name})" not in shell:
                findings.append(f"{where}: {name} is read by nothing that runs there")
        for name, field in readable.items():
            if field.is_required() and name not in container_env(docs, container):
                findings.append(f"{where}: {name} has no default and is not set")
    return findings


def secret_findings_k8s(docs: list[dict[str, Any]]) -> list[str]:
    """Committed secret values: credentials not from secretKeyRef, Secrets with data, secret-looking text."""
    findings, secrets = [], secret_names()
    for doc in docs:
        if doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData")):
            findings.append(f"Secret/{doc['metadata']['name']} holds values")
        if doc["kind"] == "ConfigMap":
            held = sorted(secrets & set(doc.get("data", {})))
            findings += [f"ConfigMap/{doc['metadata']['name']}: {name} is a credential" for name in held]
        text = yaml.safe_dump(doc)
        findings += [
            f"{doc['kind']}/{doc['metadata']['name']}: {p.pattern}" for p in SECRET_PATTERNS if p.search(text)
        ]
    for workload, container in workloads(docs):
        for name, entry in container_env(docs, container).items():
            if name in secrets and "secretKeyRef" not in entry.get("valueFrom", {}):
                findings.append(
                    f"{workload['metadata']['name']}/{container['name']}: {name} not from a secretKeyRef"
                )
    return findings


def probe_path(container: dict[str, Any], probe: str) -> str | None:
    return container.get(probe, {}).get("httpGet", {}).get("path")


def deployment_findings(docs: list[dict[str, Any]]) -> list[str]:
    """Each service: probes, requests and limits, a PodDisruptionBudget, waits for the migrations,
    replicas within its topic's partitions (the HPA's maximum too), images of Dockerfile targets."""
    findings = []
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    budgets = [d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] == "PodDisruptionBudget"]
    scalers = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    if set(deployments) != set(SERVICES):
        findings.append(f"Deployments {sorted(deployments)} are not the services {sorted(SERVICES)}")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        [container] = [c for c in pod["spec"]["containers"] if c["name"] == name]
        if (probe_path(container, "readinessProbe"), probe_path(container, "livenessProbe")) != (
            "/readyz",
            "/healthz",
        ):
            findings.append(f"{name}: readiness must probe /readyz and liveness /healthz")
        for kind in ("requests", "limits"):
            if set(container.get("resources", {}).get(kind, {})) != {"cpu", "memory"}:
                findings.append(f"{name}: resources.{kind} needs cpu and memory")
        if not any(b.items() <= pod["metadata"]["labels"].items() for b in budgets):
            findings.append(f"{name}: no PodDisruptionBudget selects its pods")
        waits = [c.get("command", [])[:3] for c in pod["spec"].get("initContainers", [])]
        if ["paysync", "db", "wait"] not in waits:
            findings.append(f"{name}: no initContainer waits for the migrations (`paysync db wait`)")
        if name in CONSUMED:
            partitions = CONSUMED[name].partitions
            most = scalers[name]["spec"]["maxReplicas"] if name in scalers else deployment["spec"]["replicas"]
            if most > partitions:
                findings.append(f"{name}: {most} replicas > {partitions} partitions of {CONSUMED[name].name}")
    return findings


def exposure_findings(docs: list[dict[str, Any]]) -> list[str]:
    """Services only for what is called, never the metrics port; the notifier only from api-gateway."""
    findings = []
    for doc in docs:
        if doc["kind"] == "Service":
            component = doc["spec"]["selector"].get("app.kubernetes.io/component")
            if component not in CALLED:
                findings.append(f"Service/{doc['metadata']['name']} exposes {component}, which nothing calls")
            for port in doc["spec"]["ports"]:
                if port.get("targetPort") in ("metrics", 9100) or port["port"] == 9100:
                    findings.append(f"Service/{doc['metadata']['name']} exposes /metrics")
        if doc["kind"] == "Ingress":
            backends = re.findall(r"name: ([\w-]+)\n\s+port", yaml.safe_dump(doc))
            if set(backends) - {"webhook-ingest", "api-gateway"}:
                findings.append(f"Ingress/{doc['metadata']['name']} routes to {sorted(set(backends))}")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    to_notifier = [
        p
        for p in policies
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == "notifier"
    ]
    sources = [f for p in to_notifier for rule in p["spec"].get("ingress", []) for f in rule.get("from", [])]
    if sources != [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "api-gateway"}}}]:
        findings.append(f"the notifier must be reachable from api-gateway only, not {sources}")
    return findings


# -- images ------------------------------------------------------------------------------------------


def hadolint_findings(dockerfile: Path) -> list[str]:
    """hadolint's findings (warnings and errors)."""
    done = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.splitlines() if done.returncode else []


def dockerfile_targets(text: str) -> dict[str, dict[str, Any]]:
    """Each final target (`FROM runtime AS x`): its package (from its build stage), CMD and HEALTHCHECK."""
    stages = dict(re.findall(r"^FROM \S+ AS ([\w-]+)\n(.*?)(?=^FROM |\Z)", text, re.M | re.S))
    targets = {}
    for name in re.findall(r"^FROM runtime AS ([\w-]+)$", text, re.M):
        body = stages[name]
        [build] = re.findall(r"^COPY --from=([\w-]+) ", body, re.M)
        [package] = set(re.findall(r"--package (\S+)", stages[build]))
        cmd = re.findall(r"^CMD (\[.*\])$", body, re.M)
        targets[name] = {
            "package": package,
            "cmd": yaml.safe_load(cmd[-1]) if cmd else None,
            "healthcheck": re.search(r"^HEALTHCHECK (.*)$", body, re.M),
        }
    return targets


def scripts_of(package: str) -> set[str]:
    """The console scripts a workspace package declares."""
    for pyproject in ROOT.glob("*/*/pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())["project"]
        if project["name"] == package:
            return set(project.get("scripts", {}))
    return set()


def commands_in(argv: list[str]) -> list[str]:
    """The programs a container command runs: argv[0], or each command of an `sh -c` script."""
    if argv[:2] == ["sh", "-c"]:
        return [part.split()[0] for part in re.split(r"&&|\|\||;", argv[2]) if part.strip()]
    return argv[:1]


def image_findings(dockerfile: Path, docs: list[dict[str, Any]]) -> list[str]:
    """Every target's CMD and every Kubernetes command is a script of the image's package; a HEALTHCHECK
    on each server (`NONE` stated for the CLI); every service has a target."""
    targets, findings = dockerfile_targets(dockerfile.read_text()), []
    for service in (*SERVICES, "cli", "gateway-sim"):
        if service not in targets:
            findings.append(f"no Dockerfile target {service}")
    for name, target in targets.items():
        scripts = scripts_of(target["package"])
        if not target["cmd"] or target["cmd"][0] not in scripts:
            findings.append(f"target {name}: CMD {target['cmd']} is not a script of {target['package']}")
        if target["healthcheck"] is None or (name != "cli" and target["healthcheck"][1] == "NONE"):
            findings.append(f"target {name}: no HEALTHCHECK")
    for workload, container in workloads(docs):
        target = targets.get(image_target(container["image"]))
        if target is None:
            findings.append(
                f"{workload['metadata']['name']}: image {container['image']} has no Dockerfile target"
            )
            continue
        for program in commands_in(container.get("command", [])):
            if program not in scripts_of(target["package"]):
                findings.append(
                    f"{workload['metadata']['name']}/{container['name']}: {program} is not in its image"
                )
    return findings


# -- compose -----------------------------------------------------------------------------------------


def compose_schema_findings(compose_file: Path) -> list[str]:
    """What the Compose specification's schema (bundled with check-jsonschema) refuses."""
    done = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [] if done.returncode == 0 else (done.stdout + done.stderr).splitlines()


def compose_findings(compose_file: Path, settings_md: Path) -> list[str]:
    """Variables of paysync's containers undocumented or read by nothing; credentials given as values."""
    findings, known, secrets = [], documented(settings_md), secret_names()
    compose = yaml.safe_load(compose_file.read_text())
    for name, spec in compose["services"].items():
        target = spec.get("build", {}).get("target")
        if target is None:
            continue  # the broker's and the database's own images
        readable = reads(target) if target in SETTINGS else {}
        given = spec.get("environment") or {}
        for variable, field in readable.items():
            if field.is_required() and variable not in given:
                findings.append(f"{name}: {variable} has no default and is not set")
        for variable, value in given.items():
            if variable not in readable:
                findings.append(f"{name}: {variable} is read by nothing that runs there")
            elif variable not in known:
                findings.append(f"{name}: {variable} is not documented in docs/settings.md")
            if (
                variable in secrets
                and value not in COMPOSE_DEMO_VALUES
                and not re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value))
            ):
                findings.append(f"{name}: {variable} is a committed value, not ${{{variable}:?…}}")
    for line in compose_file.read_text().splitlines():
        if any(p.search(line) for p in SECRET_PATTERNS) and not any(v in line for v in COMPOSE_DEMO_VALUES):
            findings.append(f"a secret-looking value: {line.strip()}")
    return findings


# -- the committed files pass ------------------------------------------------------------------------

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
SETTINGS_MD = ROOT / "docs" / "settings.md"


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, kustomize: Path) -> list[dict[str, Any]]:
    return render(kustomize, ROOT / "deploy" / "k8s" / request.param)


def test_the_rendered_manifests_pass_the_kubernetes_schemas(rendered) -> None:
    assert k8s_schema_findings(rendered) == []
    assert {d["kind"] for d in rendered} >= {
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "ConfigMap",
        "Service",
    }


def test_every_variable_given_in_kubernetes_is_read_and_documented(rendered) -> None:
    assert env_findings_k8s(rendered, SETTINGS_MD) == []


def test_no_secret_value_is_in_the_manifests(rendered) -> None:
    assert secret_findings_k8s(rendered) == []


def test_every_service_is_probed_sized_budgeted_and_within_its_partitions(rendered) -> None:
    assert deployment_findings(rendered) == []


def test_only_what_is_called_is_exposed(rendered) -> None:
    assert exposure_findings(rendered) == []


def test_the_example_overlay_scales_the_projector_on_consumer_lag(kustomize: Path) -> None:
    docs = render(kustomize, ROOT / "deploy" / "k8s" / "overlays" / "example")
    [hpa] = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "status-projector"
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "External" and "lag" in metric["external"]["metric"]["name"]
    [reconciler] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "reconciler"]
    assert reconciler["spec"]["replicas"] > 1
    # Its replicas share the gateway budgets through PostgreSQL: no replica count to keep in step.
    configs = [d for d in docs if d["kind"] == "ConfigMap"]
    assert not any("PAYSYNC_RECONCILER_REPLICAS" in (d.get("data") or {}) for d in configs)


def test_every_setting_an_image_reads_is_documented() -> None:
    assert undocumented_settings(SETTINGS_MD) == []


def test_the_dockerfile_is_hadolint_clean() -> None:
    assert hadolint_findings(DOCKERFILE) == []


def test_every_image_runs_a_script_of_its_own_package(rendered) -> None:
    assert image_findings(DOCKERFILE, rendered) == []


def test_compose_follows_the_compose_specification() -> None:
    assert compose_schema_findings(COMPOSE) == []


def test_compose_gives_only_documented_settings_and_no_secret_values() -> None:
    assert compose_findings(COMPOSE, SETTINGS_MD) == []


# -- each check fails on a broken copy ---------------------------------------------------------------


def broken_k8s(kustomize: Path, tmp_path: Path, file: str, old: str, new: str) -> list[dict[str, Any]]:
    """deploy/k8s copied to tmp_path, `old` replaced by `new` in `file`, rendered (the example overlay)."""
    copy = tmp_path / "k8s"
    shutil.copytree(ROOT / "deploy" / "k8s", copy)
    path = copy / file
    text = path.read_text()
    assert old in text, f"{old!r} is not in {file}: the test no longer breaks anything"
    path.write_text(text.replace(old, new, 1))
    return render(kustomize, copy / "overlays" / "example")


def broken_copy(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    """`source` copied into tmp_path with `old` replaced by `new`."""
    text = source.read_text()
    assert old in text, f"{old!r} is not in {source.name}: the test no longer breaks anything"
    copy = tmp_path / source.name
    copy.write_text(text.replace(old, new, 1))
    return copy


def test_the_schema_check_refuses_a_misspelt_field(kustomize, tmp_path) -> None:
    docs = broken_k8s(kustomize, tmp_path, "base/notifier.yaml", "readinessProbe:", "readynessProbe:")
    assert any("readynessProbe" in f for f in k8s_schema_findings(docs))


def test_the_schema_check_refuses_a_wrong_type(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize, tmp_path, "base/webhook-ingest.yaml", "containerPort: 8000", "containerPort: http"
    )
    assert any("Deployment/webhook-ingest" in f for f in k8s_schema_findings(docs))


def test_the_variables_check_refuses_a_variable_nothing_reads(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize,
        tmp_path,
        "base/settings.yaml",
        "  PAYSYNC_NOTIFIER_PORT:",
        "  PAYSYNC_NOTIFIER_PROT: '1'\n  PAYSYNC_NOTIFIER_PORT:",
    )
    assert "notifier/notifier: PAYSYNC_NOTIFIER_PROT is read by nothing that runs there" in env_findings_k8s(
        docs, SETTINGS_MD
    )


def test_the_variables_check_refuses_an_undocumented_setting(kustomize, tmp_path) -> None:
    docs = render(kustomize, ROOT / "deploy" / "k8s" / "overlays" / "example")
    settings_md = broken_copy(
        tmp_path, SETTINGS_MD, "| `PAYSYNC_RECONCILER_STRIPE_MODE` |", "| `STRIPE_MODE` |"
    )
    assert "reconciler/reconciler: PAYSYNC_RECONCILER_STRIPE_MODE is not documented in docs/settings.md" in (
        env_findings_k8s(docs, settings_md)
    )
    assert undocumented_settings(settings_md) == ["PAYSYNC_RECONCILER_STRIPE_MODE"]


class _NeedsAToken(BaseSettings):
    """A setting with no default, as a service might add one."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_REPLAY_")
    token: str


def test_the_variables_check_refuses_a_setting_without_default_left_unset(kustomize, monkeypatch) -> None:
    monkeypatch.setitem(SETTINGS, "cli", (ReplaySettings, _NeedsAToken))
    docs = render(kustomize, ROOT / "deploy" / "k8s" / "overlays" / "example")
    findings = env_findings_k8s(docs, SETTINGS_MD)
    assert "paysync-migrate/migrate: PAYSYNC_REPLAY_TOKEN has no default and is not set" in findings
    assert "migrate: PAYSYNC_REPLAY_TOKEN has no default and is not set" in compose_findings(
        COMPOSE, SETTINGS_MD
    )


def test_the_secrets_check_refuses_a_password_as_a_value(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize,
        tmp_path,
        "base/reconciler.yaml",
        "valueFrom: {secretKeyRef: {name: paysync, key: database-url}}",
        "value: postgresql+asyncpg://paysync:hunter2@postgres:5432/paysync",
    )
    findings = secret_findings_k8s(docs)
    assert "reconciler/wait-for-migrations: PAYSYNC_DATABASE_URL not from a secretKeyRef" in findings
    assert any("password inside a URL" in f or "://" in f for f in findings)


def test_the_secrets_check_refuses_a_token_in_a_config_map(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize,
        tmp_path,
        "base/settings.yaml",
        "  PAYSYNC_API_GATEWAY_HOST:",
        "  PAYSYNC_API_GATEWAY_ADMIN_TOKEN: not-so-secret\n  PAYSYNC_API_GATEWAY_HOST:",
    )
    findings = secret_findings_k8s(docs)
    assert "ConfigMap/api-gateway-settings: PAYSYNC_API_GATEWAY_ADMIN_TOKEN is a credential" in findings


def test_the_secrets_check_refuses_a_secret_with_values(kustomize, tmp_path) -> None:
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: paysync\nstringData:\n  internal-token: abc\n---\n"
    )
    docs = broken_k8s(
        kustomize,
        tmp_path,
        "overlays/example/namespace.yaml",
        "apiVersion: v1\n",
        secret + "apiVersion: v1\n",
    )
    assert "Secret/paysync holds values" in secret_findings_k8s(docs)


def test_the_deployment_check_refuses_a_missing_probe(kustomize, tmp_path) -> None:
    docs = broken_k8s(kustomize, tmp_path, "base/api-gateway.yaml", "path: /readyz", "path: /healthz")
    assert "api-gateway: readiness must probe /readyz and liveness /healthz" in deployment_findings(docs)


def test_the_deployment_check_refuses_more_consumers_than_partitions(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize, tmp_path, "overlays/example/hpa-projector.yaml", "maxReplicas: 12", "maxReplicas: 13"
    )
    assert any("status-projector: 13 replicas > 12 partitions" in f for f in deployment_findings(docs))


def test_the_deployment_check_refuses_a_service_that_does_not_wait_for_the_migrations(
    kustomize, tmp_path
) -> None:
    docs = broken_k8s(kustomize, tmp_path, "base/reconciler.yaml", '"db", "wait"', '"db", "upgrade"')
    assert "reconciler: no initContainer waits for the migrations (`paysync db wait`)" in deployment_findings(
        docs
    )


def test_the_deployment_check_refuses_a_missing_limit(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize,
        tmp_path,
        "base/status-projector.yaml",
        'limits: {cpu: "1", memory: 384Mi}',
        "limits: {memory: 384Mi}",
    )
    assert "status-projector: resources.limits needs cpu and memory" in deployment_findings(docs)


def test_the_exposure_check_refuses_the_metrics_port_in_a_service(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize,
        tmp_path,
        "base/notifier.yaml",
        "    - {name: http, port: 8000, targetPort: http}",
        "    - {name: http, port: 8000, targetPort: http}\n    - {name: m, port: 9100, targetPort: metrics}",
    )
    assert "Service/notifier exposes /metrics" in exposure_findings(docs)


def test_the_exposure_check_refuses_a_notifier_open_to_all(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize,
        tmp_path,
        "base/network-policy.yaml",
        "values: [webhook-ingest, api-gateway]",
        "values: [webhook-ingest, api-gateway, notifier]",
    )
    docs = [d for d in docs if d["metadata"]["name"] != "notifier-from-api-gateway"]
    assert any("the notifier must be reachable from api-gateway only" in f for f in exposure_findings(docs))


def test_hadolint_refuses_a_broken_dockerfile(tmp_path) -> None:
    broken = broken_copy(
        tmp_path, DOCKERFILE, "RUN pip install --no-cache-dir uv==${UV_VERSION}", "RUN pip install uv"
    )
    findings = hadolint_findings(broken)
    assert any("DL3013" in f for f in findings) and any("DL3042" in f for f in findings)


def test_the_image_check_refuses_a_command_its_package_does_not_declare(tmp_path, kustomize) -> None:
    docs = render(kustomize, ROOT / "deploy" / "k8s" / "overlays" / "example")
    broken = broken_copy(tmp_path, DOCKERFILE, 'CMD ["paysync-notifier"]', 'CMD ["paysync-notifyer"]')
    assert "target notifier: CMD ['paysync-notifyer'] is not a script of paysync-notifier" in image_findings(
        broken, docs
    )


def test_the_image_check_refuses_a_server_without_healthcheck(tmp_path, kustomize) -> None:
    docs = render(kustomize, ROOT / "deploy" / "k8s" / "overlays" / "example")
    text = DOCKERFILE.read_text()
    start = text.index("HEALTHCHECK", text.index("FROM runtime AS reconciler"))
    broken = broken_copy(tmp_path, DOCKERFILE, text[start : text.index("\n", start) + 1], "")
    assert "target reconciler: no HEALTHCHECK" in image_findings(broken, docs)


def test_the_image_check_refuses_a_job_command_not_in_its_image(kustomize, tmp_path) -> None:
    docs = broken_k8s(
        kustomize, tmp_path, "base/migrate-job.yaml", "paysync db upgrade &&", "alembic upgrade head &&"
    )
    assert "paysync-migrate/migrate: alembic is not in its image" in image_findings(DOCKERFILE, docs)


def test_the_compose_schema_check_refuses_a_broken_compose_file(tmp_path) -> None:
    broken = broken_copy(tmp_path, COMPOSE, "restart: unless-stopped", "restart: [unless-stopped]")
    assert compose_schema_findings(broken) != []


def test_the_compose_check_refuses_a_committed_token(tmp_path) -> None:
    broken = broken_copy(
        tmp_path, COMPOSE, "${PAYSYNC_INTERNAL_TOKEN:?set PAYSYNC_INTERNAL_TOKEN}", "a-token-anyone-can-read"
    )
    assert any(
        "PAYSYNC_INTERNAL_TOKEN is a committed value" in f for f in compose_findings(broken, SETTINGS_MD)
    )


def test_the_compose_check_refuses_a_variable_nothing_reads(tmp_path) -> None:
    broken = broken_copy(
        tmp_path,
        COMPOSE,
        'PAYSYNC_RECONCILER_PORT: "8000"',
        'PAYSYNC_RECONCILER_PORT: "8000", PAYSYNC_RECONCILER_PROT: "1"',
    )
    assert "reconciler: PAYSYNC_RECONCILER_PROT is read by nothing that runs there" in compose_findings(
        broken, SETTINGS_MD
    )
