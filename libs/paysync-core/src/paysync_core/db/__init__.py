"""The shared PostgreSQL schema and how to reach it."""

#: NOTIFY channel: the projector's outbox has new events (sent at commit).
OUTBOX_CHANNEL = "paysync_outbox"
#: NOTIFY channel: a payment was registered, so parked observations may now match.
REGISTERED_CHANNEL = "paysync_registered"
#: NOTIFY channel: a tenant's credentials changed; payload is the tenant id.
TENANTS_CHANNEL = "paysync_tenants"
