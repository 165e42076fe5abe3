"""A tenant's admin alerts, set and read by an operator over `/admin/v1` and with `paysync alerts`."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from paysync_core.db.engine import make_engine
from paysync_core.db.schema import alert_deliveries
from paysync_dev.operator import paysync

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "admin-secret-for-alert-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRETPATH"
HOOK = "https://alerts.example.com/paysync?token=also-secret"
SECRET = "whsec-0123456789abcdef"


async def test_an_operator_sets_alert_settings_and_reads_them_back_without_secrets(open_api, tenant) -> None:
    url = f"/admin/v1/tenants/{tenant.id}/alert-settings"
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        assert (await client.get(url)).status_code == 401
        empty = await client.get(url, headers=ADMIN)
        assert empty.status_code == 200 and empty.json()["configured"] is False
        body = {
            "emails": ["ops@example.com", "finance@example.co.ke"],
            "slack_urls": [SLACK],
            "webhooks": [{"url": HOOK, "secret": SECRET}],
            "kinds": ["amount_mismatch", "stuck_payment"],
            "reminder_after_seconds": 900,
        }
        put = await client.put(url, json=body, headers=ADMIN)
        assert put.status_code == 200
        got = await client.get(url, headers=ADMIN)
    view = got.json()
    assert view == put.json()
    assert view["emails"] == body["emails"] and view["kinds"] == body["kinds"]
    assert view["reminder_after_seconds"] == 900 and view["configured"] is True
    assert view["slack"][0].startswith("hooks.slack.com[sha256:")
    assert view["webhooks"][0].startswith("alerts.example.com[sha256:")
    for secret in ("XXXXSECRETPATH", "also-secret", SECRET):
        assert secret not in got.text


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"emails": ["not-an-address"]}, "emails.0", "not an email address"),
        ({"emails": ["a@b.com\nBcc: x@evil.com"]}, "emails.0", "not an email address"),
        ({"slack_urls": ["http://hooks.example.com/x"]}, "slack_urls.0", "https"),
        ({"webhooks": [{"url": "ftp://x.example.com", "secret": SECRET}]}, "webhooks.0.url", "https"),
        ({"webhooks": [{"url": HOOK, "secret": "short"}]}, "webhooks.0.secret", "at least 16"),
        ({"kinds": ["amount_mismatch", "typo_kind"]}, "kinds.1", "unknown alert kind 'typo_kind'"),
        ({"reminder_after_seconds": 0}, "reminder_after_seconds", "greater than 0"),
        ({"quiet_seconds": -1}, "quiet_seconds", "greater than or equal to 0"),
        ({"pager": "x"}, "pager", "Extra inputs"),
    ],
)
async def test_bad_alert_settings_are_refused_with_the_field_and_change_nothing(
    open_api, tenant, change, field, words
) -> None:
    url = f"/admin/v1/tenants/{tenant.id}/alert-settings"
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        good = {"emails": ["ops@example.com"], "slack_urls": ["http://127.0.0.1:9/local-receiver-ok"]}
        assert (await client.put(url, json=good, headers=ADMIN)).status_code == 200
        refused = await client.put(url, json={**good, **change}, headers=ADMIN)
        after = await client.get(url, headers=ADMIN)
    assert refused.status_code == 422
    answer = refused.json()
    assert answer["error"] == "invalid_request" and set(answer) == {"error", "message", "problems"}
    assert [p["field"] for p in answer["problems"]] == [field]
    assert words in answer["problems"][0]["problem"]
    assert SECRET not in refused.text
    assert after.json()["emails"] == ["ops@example.com"] and after.json()["slack"][0].startswith("127.0.0.1[")


async def test_unknown_tenant_is_404(open_api) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        for path in ("alert-settings", "deliveries"):
            answer = await client.get(f"/admin/v1/tenants/nobody-here/{path}", headers=ADMIN)
            assert answer.status_code == 404 and answer.json()["error"] == "unknown_tenant"
        put = await client.put("/admin/v1/tenants/nobody-here/alert-settings", json={}, headers=ADMIN)
        assert put.status_code == 404


async def enter_log(database_url: str, tenant: str) -> None:
    """Two rows of the delivery log, as the notifier writes them: one sent, one dead."""
    engine = make_engine(database_url, pool_size=1)
    common = {
        "tenant_id": tenant,
        "step": "opened",
        "channel": "slack",
        "recipient": "hooks.slack.com[sha256:1]",
    }
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(alert_deliveries),
                [
                    {
                        **common,
                        "alert_id": "a-1",
                        "kind": "amount_mismatch",
                        "alert": {},
                        "status": "sent",
                        "attempts": 1,
                        "last_error": None,
                    },
                    {
                        **common,
                        "alert_id": "a-2",
                        "kind": "stuck_payment",
                        "alert": {},
                        "status": "dead",
                        "attempts": 8,
                        "last_error": "slack answered 503",
                    },
                ],
            )
    finally:
        await engine.dispose()


async def test_the_delivery_log_is_read_with_filters_over_the_api_and_the_cli(
    open_api, tenant, migrated_database, credentials_keys
) -> None:
    await enter_log(migrated_database, tenant.id)
    url = f"/admin/v1/tenants/{tenant.id}/deliveries"
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        everything = (await client.get(url, headers=ADMIN)).json()["deliveries"]
        dead = (await client.get(url, params={"status": "dead"}, headers=ADMIN)).json()["deliveries"]
        by_kind = (await client.get(url, params={"kind": "amount_mismatch"}, headers=ADMIN)).json()
        later = (await client.get(url, params={"since": "2999-01-01T00:00:00"}, headers=ADMIN)).json()
        bad = await client.get(url, params={"status": "lost"}, headers=ADMIN)
        unknown = await client.get(url, params={"channel": "email"}, headers=ADMIN)
    assert sorted(d["alert_id"] for d in everything) == ["a-1", "a-2"]
    assert [(d["alert_id"], d["last_error"], d["attempts"]) for d in dead] == [
        ("a-2", "slack answered 503", 8)
    ]
    assert [d["alert_id"] for d in by_kind["deliveries"]] == ["a-1"] and later["deliveries"] == []
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "status"
    assert unknown.status_code == 400

    env = {"PAYSYNC_CREDENTIALS_KEYS": credentials_keys}
    ran = await paysync(migrated_database, "alerts", "log", tenant.id, "--status", "dead", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert [(d["alert_id"], d["last_error"]) for d in ran.json()["deliveries"]] == [
        ("a-2", "slack answered 503")
    ]


async def test_an_operator_configures_alerts_with_the_cli(
    open_api, tenant, migrated_database, credentials_keys
) -> None:
    env = {"PAYSYNC_CREDENTIALS_KEYS": credentials_keys, "PAYSYNC_ALERTS_WEBHOOK_SECRET": SECRET}
    args = ("alerts", "config", tenant.id)
    ran = await paysync(
        migrated_database,
        *args,
        *("--email", "ops@example.com", "--slack-url", SLACK, "--webhook", HOOK, "--kind", "drift_typo"),
        "--json",
        env=env,
    )
    assert ran.returncode == 2 and "unknown alert kind 'drift_typo'" in ran.stderr
    assert (await paysync(migrated_database, *args, "--json", env=env)).json()["configured"] is False

    ran = await paysync(
        migrated_database,
        *args,
        *("--email", "ops@example.com", "--slack-url", SLACK, "--webhook", HOOK, "--reminder-after", "60"),
        "--json",
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    for secret in ("XXXXSECRETPATH", "also-secret", SECRET):
        assert secret not in ran.stdout + ran.stderr
    changed = await paysync(migrated_database, *args, "--email", "oncall@example.com", "--json", env=env)
    view = changed.json()
    assert view["emails"] == ["oncall@example.com"] and view["reminder_after_seconds"] == 60
    assert len(view["slack"]) == 1 and len(view["webhooks"]) == 1  # what the options did not name stays

    async with open_api(admin_token=ADMIN_TOKEN) as client:
        api_view = (await client.get(f"/admin/v1/tenants/{tenant.id}/alert-settings", headers=ADMIN)).json()
    assert api_view == view
