"""Accounts: credentials, refresh tokens, login policy, login attempts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

from medflow.db.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("password_changed_at", UTCDateTime, nullable=False),
        sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", UTCDateTime, nullable=True),
        sa.Column("last_login_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_credentials"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_credentials_user_id_users"),
        **_TABLE,
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("family_id", sa.String(26), nullable=False),
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("issued_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("used_at", UTCDateTime, nullable=True),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_refresh_tokens_user_id_users"),
        **_TABLE,
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_user_id_revoked_at", "refresh_tokens", ["user_id", "revoked_at"])
    op.create_table(
        "login_policies",
        sa.Column("institution_id", sa.String(26), nullable=False),
        sa.Column("min_length", sa.Integer, nullable=False),
        sa.Column("require_upper", sa.Boolean, nullable=False),
        sa.Column("require_lower", sa.Boolean, nullable=False),
        sa.Column("require_digit", sa.Boolean, nullable=False),
        sa.Column("require_symbol", sa.Boolean, nullable=False),
        sa.Column("max_failed_attempts", sa.Integer, nullable=False),
        sa.Column("lockout_s", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(26), nullable=True),
        sa.PrimaryKeyConstraint("institution_id", name="pk_login_policies"),
        sa.ForeignKeyConstraint(["institution_id"], ["institutions.id"], name="fk_login_policies_institution_id_institutions"),
        **_TABLE,
    )
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("institution_id", sa.String(26), nullable=True),
        sa.Column("user_id", sa.String(26), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("attempted_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_attempts"),
        **_TABLE,
    )
    op.create_index("ix_login_attempts_user_id_attempted_at", "login_attempts", ["user_id", "attempted_at"])
    op.create_index("ix_login_attempts_institution_id_attempted_at", "login_attempts", ["institution_id", "attempted_at"])


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.drop_table("login_policies")
    op.drop_table("refresh_tokens")
    op.drop_table("credentials")
