"""The projector through a restart (a failover) of PostgreSQL: observations that arrive meanwhile are
applied once the database is back, never dead-lettered, and its loops go on.

The shared cluster is not restarted: the projector reaches it through `PostgresProxy`, which cuts its
sessions and then refuses new ones as a server starting up does (SQLSTATE 57P03).
"""

from __future__ import annotations

import pytest

from paysync_core.domain.status import UnifiedStatus as S
from paysync_dev.payments import observation, payment_row, publish_observations, register_payment
from paysync_dev.pg_proxy import PostgresProxy
from paysync_dev.service_fixtures import wait_until
from paysync_status_projector.app import create_app

from .test_consumer_loop import projector_settings

pytestmark = pytest.mark.integration


async def test_observations_that_arrive_while_the_database_restarts_are_applied_once_it_is_back(
    engine, tenant, kafka_topics, database_proxy: PostgresProxy
) -> None:
    proxy = database_proxy
    settings = await projector_settings(kafka_topics, proxy.url, max_attempts=2)
    first, second = [await register_payment(engine, tenant.id, domain="jobs") for _ in range(2)]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await publish_observations(kafka_topics, [observation(first, S.SUCCEEDED, 1)])
        # The projector joins a consumer group of its own first: tens of seconds on a busy host.
        await wait_until(lambda: status_is(engine, first, "succeeded"), 60, "the first observation applied")

        proxy.restarting()
        await publish_observations(kafka_topics, [observation(second, S.SUCCEEDED, 1)])
        # More tries than `max_attempts`: the observation would have been dead-lettered by now.
        await wait_until(lambda: tried(proxy, 5), 60, "the projector trying the database")
        await proxy.back()
        await wait_until(lambda: status_is(engine, second, "succeeded"), 60, "the second observation applied")


async def status_is(engine, payment, status: str) -> bool:
    return (await payment_row(engine, payment)).status == status


async def tried(proxy: PostgresProxy, times: int) -> bool:
    return proxy.refused >= times
