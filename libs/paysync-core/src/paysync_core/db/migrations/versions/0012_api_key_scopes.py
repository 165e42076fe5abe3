"""api_keys: kind (secret or publishable), scopes, expires_at; tenants: cors_origins

Existing keys become secret keys with both scopes and no expiry: they keep the access they had.

Revision ID: 0012_api_key_scopes
Revises: 0010_app_webhooks
Create Date: 2026-12-05 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_api_key_scopes"
down_revision = "0011_payment_phone_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_keys", sa.Column("kind", sa.String(length=16), server_default="secret", nullable=False)
    )
    op.add_column(
        "api_keys",
        sa.Column(
            "scopes",
            postgresql.ARRAY(sa.String(length=16)),
            server_default=sa.text("'{read,write}'"),
            nullable=False,
        ),
    )
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(op.f("ck_api_keys_kind"), "api_keys", "kind IN ('secret', 'publishable')")
    op.add_column(
        "tenants",
        sa.Column(
            "cors_origins",
            postgresql.ARRAY(sa.String(length=255)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("tenants", "cors_origins")
    op.drop_constraint(op.f("ck_api_keys_kind"), "api_keys", type_="check")
    op.drop_column("api_keys", "expires_at")
    op.drop_column("api_keys", "scopes")
    op.drop_column("api_keys", "kind")
