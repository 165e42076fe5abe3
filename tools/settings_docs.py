"""Render every service's settings (env variable, default, description) as the tables in `docs/settings.md`.

Run `.venv/bin/python tools/settings_docs.py > docs/settings.md`; `tests/docs/test_docs.py`
fails while the committed file differs from what this prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_cli.settings import ReplaySettings
from paysync_core.server import ServerSettings
from paysync_core.settings import CommonSettings
from paysync_notifier.alert_settings import AlertDeliverySettings
from paysync_notifier.settings import NotifierSettings
from paysync_reconciler.settings import ReconcilerSettings
from paysync_status_projector.settings import StatusProjectorSettings
from paysync_webhook_ingest.settings import WebhookIngestSettings

#: (title, settings class); `common` fields are listed once, under the shared settings.
SECTIONS: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("Shared by every service", CommonSettings),
    ("Every service's HTTP server", ServerSettings),
    ("webhook-ingest", WebhookIngestSettings),
    ("status-projector", StatusProjectorSettings),
    ("reconciler", ReconcilerSettings),
    ("notifier", NotifierSettings),
    ("notifier: admin alert delivery", AlertDeliverySettings),
    ("api-gateway", ApiGatewaySettings),
    ("paysync replay (the CLI)", ReplaySettings),
)

#: Defaults that depend on the machine they are computed on, shown as what they are.
_COMPUTED = {("ReconcilerSettings", "instance_id"): "`<hostname>-<pid>`"}


def _default(cls: type[BaseSettings], name: str, field: FieldInfo) -> str:
    if (cls.__name__, name) in _COMPUTED:
        return _COMPUTED[(cls.__name__, name)]
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, SecretStr):
        return "(empty)" if not value.get_secret_value() else "(secret)"
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        if not value:
            return "(empty)"
        return f"`{','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in value)}`"
    if "domains.toml" in str(value):
        return "the built-in `domains.toml`"  # an absolute path of this checkout otherwise
    return f"`{json.dumps(value) if isinstance(value, bool) else value}`"


def _is_section(field: FieldInfo) -> bool:
    """A nested settings class (the notifier's `alerts`): listed as a section of its own."""
    factory = field.default_factory
    return isinstance(factory, type) and issubclass(factory, BaseSettings)


def rows(cls: type[BaseSettings]) -> Iterator[tuple[str, str, str]]:
    """(environment variable, default, description) of each setting of one class, `common` left out."""
    prefix = cls.model_config.get("env_prefix", "")
    for name, field in cls.model_fields.items():
        if name == "common" or _is_section(field):
            continue
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        yield f"`{prefix}{name.upper()}`", _default(cls, name, field), description


def render() -> str:
    """The Markdown of every section's table."""
    lines = [
        "# Settings",
        "",
        "Every setting of every service: environment variable, default, what it does. Generated from the",
        "pydantic settings classes by `.venv/bin/python tools/settings_docs.py > docs/settings.md`;",
        "`tests/docs/test_docs.py` fails while this file is stale.",
        "How to use them: [operations.md](operations.md).",
    ]
    for title, cls in SECTIONS:
        lines += [
            "",
            f"## {title} (`{cls.__module__}.{cls.__name__}`)",
            "",
            "| variable | default | what it does |",
            "|---|---|---|",
        ]
        lines += [f"| {var} | {default} | {description} |" for var, default, description in rows(cls)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
