"""docker-compose.yml and deploy/Dockerfile, checked against the code (no Docker engine runs here).

Each service's container must start the service's own command, with environment variables that
its settings actually read, listening where the compose file publishes it, and never pointing at
127.0.0.1 for another container. The broker image is the Kafka version the tests run against.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic_settings import BaseSettings

from paysync_core.server import ServerSettings
from paysync_core.settings import CommonSettings
from paysync_dev import kafka

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
#: Services only other services call: reachable on the compose network, published on no host port.
INTERNAL = {"notifier"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = (ROOT / "docker-compose.yml").read_text()
    key = Fernet.generate_key().decode()
    # The variables the file requires from the environment, as `docker compose` would fill them in.
    text = re.sub(r"\$\{PAYSYNC_CREDENTIALS_KEYS:\?[^}]*\}", key, text)
    text = re.sub(r"\$\{PAYSYNC_INTERNAL_TOKEN:\?[^}]*\}", secrets.token_urlsafe(32), text)
    assert "${" not in text, "an environment variable the test does not know how to fill in"
    return yaml.safe_load(text)


def settings_class(service: str) -> type[BaseSettings]:
    module = importlib.import_module(f"paysync_{service.replace('-', '_')}.settings")
    [cls] = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, BaseSettings) and v.__module__ == module.__name__
    ]
    return cls


def test_every_service_has_a_container_that_runs_its_own_command(compose) -> None:
    built = {name: spec["build"]["target"] for name, spec in compose["services"].items() if name in SERVICES}
    assert built == {s: s for s in SERVICES}
    for service in SERVICES:
        scripts = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())["project"][
            "scripts"
        ]
        assert f"paysync-{service}" in scripts  # what the target's CMD runs (test_images checks the CMD)


def container_environment(compose, service: str, monkeypatch) -> dict[str, str]:
    """The service container's environment, and only it, in os.environ; returned as a dict."""
    environment = {k: str(v) for k, v in compose["services"][service]["environment"].items()}
    for name in list(os.environ):
        if name.startswith("PAYSYNC_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@pytest.mark.parametrize("service", SERVICES)
def test_each_containers_environment_is_read_by_its_settings_and_names_no_localhost(
    compose, service, monkeypatch
) -> None:
    spec = compose["services"][service]
    environment = container_environment(compose, service, monkeypatch)
    cls = settings_class(service)
    settings = cls()
    prefix = cls.model_config["env_prefix"]
    fields = {f"{prefix}{n}".upper(): n for n in cls.model_fields}
    common = {f"PAYSYNC_{n}".upper(): n for n in CommonSettings.model_fields}
    server = {f"PAYSYNC_HTTP_{n}".upper(): n for n in ServerSettings.model_fields}  # read by `serve`
    for name, value in environment.items():
        if name in server:
            assert str(getattr(ServerSettings(), server[name])) == value, f"{service}: {name}"
            continue
        assert name in fields or name in common, f"{service}: {name} is read by nothing"
        target = getattr(settings, fields[name]) if name in fields else getattr(settings.common, common[name])
        shown = target.get_secret_value() if hasattr(target, "get_secret_value") else target
        assert str(shown) == value, f"{service}: {name} did not reach the settings"
    assert settings.host == "0.0.0.0"
    assert str(settings.port) == environment[f"{prefix}PORT"]
    if service in INTERNAL:
        assert "ports" not in spec, f"{service} is internal: its port must not be published on the host"
        assert [str(p) for p in spec["expose"]] == [f"{settings.port}"]
    else:
        assert [f"{settings.port}"] == [p.split(":")[-1] for p in spec["ports"]]
    for name, value in settings.model_dump(mode="json").items():
        if name != "host" and isinstance(value, str):
            assert "127.0.0.1" not in value and "localhost" not in value, f"{service}: {name}={value}"
    for name, value in settings.common.model_dump(mode="json").items():
        assert "127.0.0.1" not in str(value) and "localhost" not in str(value), f"{service}: {name}={value}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_container_publishes_its_metrics_on_the_host(compose, service, monkeypatch) -> None:
    """/metrics carries tenant ids: served on a port of its own that only the compose network reaches."""
    spec = compose["services"][service]
    container_environment(compose, service, monkeypatch)
    metrics_port = ServerSettings().metrics_port
    assert metrics_port is not None and metrics_port != settings_class(service)().port
    published = [str(p).split(":")[-1].split("/")[0] for p in spec.get("ports", [])]
    assert str(metrics_port) not in published
    assert spec.get("network_mode") != "host"


def test_the_notifier_is_not_published_and_shares_an_internal_token_with_api_gateway(compose) -> None:
    notifier, api = compose["services"]["notifier"], compose["services"]["api-gateway"]
    assert "ports" not in notifier  # its live stream is reached only through api-gateway
    token = notifier["environment"]["PAYSYNC_INTERNAL_TOKEN"]
    assert token and api["environment"]["PAYSYNC_INTERNAL_TOKEN"] == token
    assert (
        api["environment"]["PAYSYNC_API_GATEWAY_NOTIFIER_URL"] == f"http://notifier:{notifier['expose'][0]}"
    )


def test_the_broker_image_is_the_kafka_version_the_tests_use(compose) -> None:
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{kafka.version()}"


def test_the_dockerfile_copies_every_workspace_member_the_lock_names() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+/pyproject\.toml) ", dockerfile, re.M))
    members = {
        str(p.relative_to(ROOT))
        for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml", "tools/*/pyproject.toml")
        for p in ROOT.glob(pattern)
    }
    assert copied == members  # `uv sync --locked` checks the whole workspace against uv.lock


def test_the_migrate_container_is_built_from_the_package_whose_command_it_runs(compose) -> None:
    """`paysync db upgrade` needs the `paysync` script in that image: the package declaring it."""
    target = compose["services"]["migrate"]["build"]["target"]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    [name] = set(
        re.findall(
            r"^RUN uv sync .* --package (\S+)\n",
            dockerfile.split(f" AS build-{target}\n")[1].split("\nFROM ")[0],
            re.M,
        )
    )
    [package] = [
        project
        for p in ROOT.glob("*/*/pyproject.toml")
        if (project := tomllib.loads(p.read_text())["project"])["name"] == name
    ]
    commands = {
        word for word in " ".join(compose["services"]["migrate"]["command"]).split() if "paysync" in word
    }
    assert commands <= set(package["scripts"]), f"{commands} not all in {package['name']}'s scripts"
