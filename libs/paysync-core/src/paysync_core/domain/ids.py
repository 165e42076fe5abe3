"""The deterministic id of a payment: every service that creates a payment row derives it here."""

from __future__ import annotations

import uuid

#: Changing this renames every payment: ids already stored would no longer match new registrations.
PAYMENT_NAMESPACE = uuid.UUID("6f6e6c79-2d70-6179-7379-6e632d706179")


def payment_id_for(tenant: str, provider: str, provider_ref: str) -> uuid.UUID:
    """The id of the payment (tenant, provider, reference).

    Registering it twice, or creating it from a gateway's success and registering it later, gives
    the same payment.
    """
    return uuid.uuid5(PAYMENT_NAMESPACE, f"{tenant}:{provider}:{provider_ref}")
