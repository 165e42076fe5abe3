"""A tenant's admin alerts, set and read by an operator over `/admin/v1` and with `paysync alerts`."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from paysync_core.app_webhooks import new_secret
from paysync_core.db.engine import make_engine
from paysync_core.db.schema import alert_deliveries
from paysync_dev.operator import paysync

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "admin-secret-for-alert-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRETPATH"
HOOK = "https://alerts.example.com/paysync?token=also-secret"
SECRET = new_secret()


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
        ({"webhooks": [{"url": HOOK, "secret": "whsec-0123456789abcdef"}]}, "webhooks.0.secret", "whsec_"),
        ({"webhooks": [{"url": HOOK, "secret": "whsec_c2hvcnQ="}]}, "webhooks.0.secret", "16 to 256 bytes"),
        ({"webhooks": [{"url": HOOK, "secret": "whsec_not base64!"}]}, "webhooks.0.secret", "base64"),
        (
            {"webhooks": [{"url": HOOK, "secret": SECRET, "previous_secrets": ["old-plain-secret-1234"]}]},
            "webhooks.0.previous_secrets.0",
            "whsec_",
        ),
        ({"kinds": ["amount_mismatch", "typo_kind"]}, "kinds.1", "unknown alert kind 'typo_kind'"),
        ({"reminder_after_seconds": 0}, "reminder_after_seconds", "greater than 0"),
        ({"quiet_seconds": -1}, "quiet_seconds", "greater than or equal to 0"),
        ({"pager": "x"}, "pager", "Extra inputs"),
        ({"pending_deadlines": {"bookings": "soon"}}, "pending_deadlines.bookings", "not a duration: 'soon'"),
        ({"pending_deadlines": {"Bookings!": "30m"}}, "pending_deadlines.Bookings!.[key]", "should match"),
        ({"pending_deadlines": {"bookings": "0s"}}, "pending_deadlines.bookings", "greater than 0"),
        ({"failure_rate": {"min_failed": 30, "of_last": 20}}, "failure_rate", "cannot exceed of_last"),
        ({"failure_rate": {"min_failed": 0}}, "failure_rate.min_failed", "greater than or equal to 1"),
        ({"failure_rate": {"window_seconds": "8d"}}, "failure_rate.window_seconds", "less than or equal"),
        ({"dead_letters": "sometimes"}, "dead_letters", "valid boolean"),
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


async def test_the_rules_on_status_changes_are_set_over_the_api_with_defaults_until_then(
    open_api, tenant
) -> None:
    url = f"/admin/v1/tenants/{tenant.id}/alert-settings"
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        defaults = (await client.get(url, headers=ADMIN)).json()
        body = {
            "emails": ["ops@example.com"],
            "pending_deadlines": {"bookings": "30m", "invoices": "3d", "referrals": 600},
            "failure_rate": {"min_failed": 3, "of_last": 10, "window_seconds": "2h"},
            "dead_letters": False,
        }
        put = await client.put(url, json=body, headers=ADMIN)
        got = (await client.get(url, headers=ADMIN)).json()
        off = await client.put(url, json={"emails": ["ops@example.com"], "failure_rate": None}, headers=ADMIN)
    assert defaults["pending_deadlines"] == {} and defaults["dead_letters"] is True
    assert defaults["failure_rate"] == {"min_failed": 5, "of_last": 20, "window_seconds": 3600.0}
    assert put.status_code == 200 and got == put.json()
    assert got["pending_deadlines"] == {"bookings": 1800.0, "invoices": 259200.0, "referrals": 600.0}
    assert got["failure_rate"] == {"min_failed": 3, "of_last": 10, "window_seconds": 7200.0}
    assert got["dead_letters"] is False
    assert off.status_code == 200 and off.json()["failure_rate"] is None


async def test_the_cli_sets_the_rules_and_quiet_time_and_refuses_bad_ones_changing_nothing(
    tenant, migrated_database, credentials_keys
) -> None:
    env = {"PAYSYNC_CREDENTIALS_KEYS": credentials_keys}

    async def alerts_config(*args: str):
        return await paysync(migrated_database, "alerts", "config", tenant.id, *args, "--json", env=env)

    ran = await alerts_config(
        "--email", "ops@example.com",
        "--pending-deadline", "bookings=30m", "--pending-deadline", "invoices=3d",
        "--failure-rate", "2/10", "--failure-window", "30m",
        "--no-dead-letters", "--quiet-seconds", "120",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    view = ran.json()
    assert view["pending_deadlines"] == {"bookings": 1800.0, "invoices": 259200.0}
    assert view["failure_rate"] == {"min_failed": 2, "of_last": 10, "window_seconds": 1800.0}
    assert view["dead_letters"] is False and view["quiet_seconds"] == 120.0

    window_only = await alerts_config("--failure-window", "2h")  # keeps 2/10
    assert window_only.json()["failure_rate"] == {"min_failed": 2, "of_last": 10, "window_seconds": 7200.0}

    for bad, words in [
        (("--pending-deadline", "bookings=soon"), "pending_deadlines.bookings: Value error, not a duration"),
        (("--pending-deadline", "bookings"), "DOMAIN=DURATION"),
        (("--failure-rate", "20/10"), "min_failed (20) cannot exceed of_last (10)"),
        (("--failure-rate", "lots"), "FAILED/OF_LAST"),
    ]:
        refused = await alerts_config(*bad)
        assert refused.returncode == 2, (bad, refused.stdout)
        assert words in " ".join(refused.stderr.split()), (bad, refused.stderr)
    after = (await alerts_config()).json()
    assert after["pending_deadlines"] == view["pending_deadlines"] and after["failure_rate"]["of_last"] == 10

    off = await alerts_config("--no-failure-rate", "--pending-deadline", "", "--dead-letters")
    assert (off.json()["failure_rate"], off.json()["pending_deadlines"], off.json()["dead_letters"]) == (
        None,
        {},
        True,
    )


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


async def test_the_cli_sets_the_quiet_time_it_is_given(tenant, migrated_database, credentials_keys) -> None:
    env = {"PAYSYNC_CREDENTIALS_KEYS": credentials_keys}
    args = ("alerts", "config", tenant.id, "--email", "ops@example.com", "--quiet-seconds", "300", "--json")
    ran = await paysync(migrated_database, *args, env=env)
    assert ran.returncode == 0, ran.stderr
    shown = await paysync(migrated_database, "alerts", "config", tenant.id, "--json", env=env)
    assert ran.json()["quiet_seconds"] == shown.json()["quiet_seconds"] == 300.0


async def test_the_cli_takes_the_old_webhook_secret_after_the_new_one_during_a_rotation(
    tenant, migrated_database, credentials_keys
) -> None:
    env = {"PAYSYNC_CREDENTIALS_KEYS": credentials_keys}
    args = ("alerts", "config", tenant.id, "--webhook", HOOK, "--json")
    old, new = new_secret(), new_secret()
    refused = await paysync(
        migrated_database, *args, "--webhook-secret", new, "--webhook-secret", "old-plain-secret", env=env
    )
    assert refused.returncode == 2
    assert "webhooks.0.previous_secrets.0: Value error, must be a Standard Webhooks secret" in " ".join(
        refused.stderr.split()
    )
    assert "old-plain-secret" not in refused.stdout + refused.stderr
    unchanged = await paysync(migrated_database, "alerts", "config", tenant.id, "--json", env=env)
    assert unchanged.json()["configured"] is False

    ran = await paysync(migrated_database, *args, "--webhook-secret", new, "--webhook-secret", old, env=env)
    assert ran.returncode == 0, ran.stderr
    (hook,) = ran.json()["webhooks"]
    assert hook.startswith("alerts.example.com[sha256:")
    for secret in (old, new):
        assert secret not in ran.stdout + ran.stderr
