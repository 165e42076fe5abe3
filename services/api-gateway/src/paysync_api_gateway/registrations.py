"""A new payment registered in one statement, with its mode from credentials decrypted once.

`POST /v1/payments` used to cost five statements through SQLAlchemy in a transaction (read the
tenant's credentials, insert the payment, bind its references, NOTIFY, and BEGIN/COMMIT around
them) and a decryption of the tenant's credentials, for 3.4 ms of CPU a registration
(bench/README.md, API reads and registrations). A registration that makes a new payment is now one
statement, prepared once per connection and run on the pooled connection's asyncpg connection,
committing on its own: it inserts the payment and binds its references, all or nothing. The
projector's matcher is woken afterwards, once for the new payments of a short window (`wakeups.py`).

The payment's mode (test or live) is that of the tenant's credentials *now*, so the statement
inserts only while the tenant's stored ciphertext is the one whose mode it was given; otherwise it
inserts nothing and answers the ciphertext it found, whose mode is worked out (once: it is kept by
ciphertext) before trying again. Anything else (the payment existed, a reference belongs to
another payment, no such tenant, any failure of the statement) answers None and the caller
registers it the long way (`service.register_payment`), which decides and reports every such case
as before.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from paysync_api_gateway.driver_pool import DriverPool
from paysync_api_gateway.schemas import RegisterPayment
from paysync_core.credentials import GatewayCredentials
from paysync_core.crypto import CredentialsCipher, CredentialsKeyError
from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.providers.modes import Mode, credentials_mode

log = structlog.get_logger()

#: The columns of a payment the API shows (`service.to_payment`), as the insert returns them.
_SHOWN = (
    "id, provider, provider_ref, domain, entity_id, amount_minor, currency, status, mode, "
    "amount_received_minor, amount_refunded_minor, paid_at, flags, sequence, metadata, created_at, updated_at"
)

#: $1 id, $2 tenant, $3 provider, $4 reference, $5 domain, $6 entity, $7 amount, $8 currency,
#: $9 metadata, $10 mode, $11 phone hash, $12 the ciphertext the mode was worked out from,
#: $13 every reference (its own and its aliases). One row while the tenant exists: the tenant's
#: ciphertext, and the new payment's columns (all null when nothing was inserted).
_REGISTER_NEW = f"""
WITH tenant AS (
    SELECT credentials_ciphertext FROM tenants WHERE id = $2::varchar
), payment AS (
    INSERT INTO payments (
        id, tenant_id, provider, provider_ref, domain, entity_id, amount_minor, currency, metadata,
        mode, phone_hash
    )
    SELECT $1::uuid, $2::varchar, $3::varchar, $4::varchar, $5::varchar, $6::varchar, $7::bigint,
        $8::varchar, $9::jsonb, $10::varchar, $11::varchar
    FROM tenant WHERE credentials_ciphertext IS NOT DISTINCT FROM $12::bytea
    ON CONFLICT DO NOTHING
    RETURNING {_SHOWN}
), refs AS (
    INSERT INTO payment_refs (tenant_id, provider, ref, payment_id)
    SELECT DISTINCT $2::varchar, $3::varchar, ref, $1::uuid FROM unnest($13::varchar[]) AS ref
    WHERE EXISTS (SELECT FROM payment)
)
SELECT tenant.credentials_ciphertext AS ciphertext, payment.*
FROM tenant LEFT JOIN payment ON true
"""  # noqa: S608 - made of constants; every value is a parameter

#: Wakes the projector's matcher (`wakeups.py`): parked observations may match the payments registered.
_WAKE_MATCHER = f"SELECT pg_notify('{REGISTERED_CHANNEL}', '')"

#: Stands for a tenant's ciphertext not seen yet: no stored ciphertext is empty.
_UNSEEN = b""


class CredentialModes:
    """The mode of each tenant's credentials by gateway, worked out once per ciphertext.

    Only the modes are kept, never the credentials. A tenant's credentials changed (or re-encrypted
    under a new key) have a new ciphertext, so they are decrypted again on their first use.
    """

    def __init__(self, cipher: CredentialsCipher | None, max_tenants: int = 10_000) -> None:
        self._cipher, self._max = cipher, max_tenants
        #: tenant → (ciphertext, mode by gateway; None when no configured key decrypts it)
        self._known: dict[str, tuple[bytes | None, dict[str, Mode | None] | None]] = {}

    @property
    def cipher(self) -> CredentialsCipher | None:
        """The cipher of the credentials keys, None when none are configured."""
        return self._cipher

    @property
    def decrypts(self) -> bool:
        """Whether credentials keys are configured (without, no mode is known)."""
        return self._cipher is not None

    def ciphertext(self, tenant: str) -> bytes | None:
        """The tenant's ciphertext last seen (`_UNSEEN` if none was)."""
        known = self._known.get(tenant)
        return _UNSEEN if known is None else known[0]

    def mode(self, tenant: str, ciphertext: bytes | None, provider: str) -> Mode | None:
        """test or live, from the tenant's credentials (`ciphertext`) for `provider`; None when they do
        not say, when no credentials keys are configured, or when no key decrypts them (logged)."""
        cipher = self._cipher
        if cipher is None or ciphertext == _UNSEEN:
            return None
        known = self._known.get(tenant)
        if known is None or known[0] != ciphertext:
            known = (ciphertext, _modes(cipher, ciphertext))
            self._remember(tenant, known)
        modes = known[1]
        if modes is None:
            # Registering needs no gateway call: a key problem (the reconciler reports it) must not stop
            # it. Unknown mode: observations of either mode apply, as to payments registered before modes.
            log.warning("payment.mode_unknown", tenant=tenant, provider=provider, reason="credentials_key")
            return None
        return modes.get(provider)

    def _remember(self, tenant: str, known: tuple[bytes | None, dict[str, Mode | None] | None]) -> None:
        self._known.pop(tenant, None)
        while len(self._known) >= self._max:  # the tenant seen longest ago goes first
            del self._known[next(iter(self._known))]
        self._known[tenant] = known


def _modes(cipher: CredentialsCipher, ciphertext: bytes | None) -> dict[str, Mode | None] | None:
    """The mode of each gateway's credentials in `ciphertext`; None when no configured key decrypts it."""
    if ciphertext is None:
        return {}
    try:
        credentials = cipher.decrypt(ciphertext)
    except CredentialsKeyError:
        return None
    return {name: credentials_mode(getattr(credentials, name)) for name in GatewayCredentials.model_fields}


async def register_new(
    driver: DriverPool, modes: CredentialModes, row: dict[str, Any], body: RegisterPayment
) -> Any | None:
    """Insert the payment (`row`: its id, tenant, phone hash and the body's columns) with its
    references, with `driver.fetchrow` (the driver pool's: `driver_pool.py`); its new row, or None
    when it was not new or the statement failed (the caller registers it the long way, see the
    module's docstring)."""
    tenant, provider = row["tenant_id"], row["provider"]
    refs = [body.provider_ref, *body.aliases]
    expected = modes.ciphertext(tenant)
    for _ in range(2):  # a second time only when the tenant's ciphertext was not the one expected
        mode = modes.mode(tenant, expected, provider)
        try:
            found = await driver.fetchrow(
                _REGISTER_NEW,
                *(
                    row[name]
                    for name in ("id", "tenant_id", "provider", "provider_ref", "domain", "entity_id")
                ),
                *(row[name] for name in ("amount_minor", "currency")),
                json.dumps(row["metadata"]),
                mode,
                row["phone_hash"],
                expected,
                refs,
            )
        except Exception:  # noqa: BLE001 - a reference taken, a dropped connection: the long way decides
            return None
        if found is None or found["id"] is not None:
            return found
        if found["ciphertext"] == expected:
            return None  # registered already
        expected = found["ciphertext"]
    return None


async def wake_matcher(driver: DriverPool) -> None:
    """Wake the projector's matcher (`NOTIFY`), with `driver.fetchrow` (the driver pool's)."""
    await driver.fetchrow(_WAKE_MATCHER)
