"""Alert settings and the delivery log: SQL shared by the admin API, the CLI and the notifier."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.alerting import AlertConfig
from paysync_core.app_webhooks import SECRET_PREFIX
from paysync_core.crypto import CredentialsCipher, CredentialsKeyError
from paysync_core.db.alert_tables import alert_deliveries, alert_settings

#: The columns of the delivery log a reader sees (never the alert payload's internals twice).
LOG_COLUMNS = (
    "id",
    "alert_id",
    "kind",
    "step",
    "channel",
    "recipient",
    "status",
    "attempts",
    "last_error",
    "digest_size",
    "created_at",
    "next_attempt_at",
    "sent_at",
)
_SECRET_FIELDS = ("slack_urls", "webhooks")


async def save_alert_settings(
    conn: AsyncConnection, tenant: str, config: AlertConfig, cipher: CredentialsCipher
) -> None:
    """Replace the tenant's alert settings; chat URLs and signing secrets are stored encrypted."""
    plain = config.model_dump(mode="json", exclude=set(_SECRET_FIELDS))
    secrets = {
        "slack_urls": list(config.slack_urls),
        "webhooks": [hook.stored() for hook in config.webhooks],
    }
    values = {"config": plain, "secrets_ciphertext": cipher.seal(json.dumps(secrets).encode())}
    await conn.execute(
        insert(alert_settings)
        .values(tenant_id=tenant, **values)
        .on_conflict_do_update(
            index_elements=[alert_settings.c.tenant_id], set_={**values, "updated_at": func.now()}
        )
    )


def _config_of(row: Any, cipher: CredentialsCipher | None) -> AlertConfig:
    secrets = {}
    if row.secrets_ciphertext:
        if cipher is None:
            raise CredentialsKeyError("PAYSYNC_CREDENTIALS_KEYS is empty: the alert channels cannot be read")
        secrets = json.loads(cipher.unseal(row.secrets_ciphertext).decode())
        secrets["webhooks"] = [_current(hook) for hook in secrets.get("webhooks", [])]
    return AlertConfig.model_validate({**row.config, **secrets})


def _current(hook: dict[str, Any]) -> dict[str, Any]:
    """A stored webhook in today's form. One saved before secrets took the `whsec_` form (any string of
    16+ characters, signing `timestamp.body`) keeps its key: the secret's UTF-8 bytes, as `whsec_`."""
    secret = hook.get("secret", "")
    if secret.startswith(SECRET_PREFIX):
        return hook
    return {**hook, "secret": SECRET_PREFIX + base64.b64encode(secret.encode()).decode()}


async def load_alert_settings(
    conn: AsyncConnection, tenant: str, cipher: CredentialsCipher | None
) -> AlertConfig | None:
    """The tenant's alert settings, secrets decrypted; None if it has none."""
    row = (await conn.execute(select(alert_settings).where(alert_settings.c.tenant_id == tenant))).first()
    return _config_of(row, cipher) if row else None


async def list_deliveries(
    conn: AsyncConnection,
    tenant: str,
    *,
    status: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> Sequence[Any]:
    """The tenant's delivery log, newest first: what was sent, to whom, when, and what failed."""
    table = alert_deliveries
    query = select(*(table.c[name] for name in LOG_COLUMNS)).where(table.c.tenant_id == tenant)
    if status:
        query = query.where(table.c.status == status)
    if kind:
        query = query.where(table.c.kind == kind)
    if since:
        query = query.where(table.c.created_at >= since)
    query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
    return (await conn.execute(query)).all()
