"""Users (role, status, department, profile) and the append-only audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

from medflow.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("institution_id", sa.String(26), nullable=False),
        sa.Column("department_id", sa.String(26), nullable=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("profile", sa.JSON, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.ForeignKeyConstraint(["institution_id"], ["institutions.id"], name="fk_users_institution_id_institutions"),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"], name="fk_users_department_id_departments"),
        sa.UniqueConstraint("institution_id", "username", name="uq_users_institution_id_username"),
        sa.CheckConstraint("role IN ('admin', 'doctor', 'patient')", name="ck_users_role"),
        sa.CheckConstraint("status IN ('active', 'disabled', 'deleted')", name="ck_users_status"),
        mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci",
    )
    op.create_index("ix_users_institution_id_role_status_id", "users", ["institution_id", "role", "status", "id"])
    op.create_index("ix_users_institution_id_department_id_id", "users", ["institution_id", "department_id", "id"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.Column("institution_id", sa.String(26), nullable=True),
        sa.Column("actor_id", sa.String(26), nullable=True),
        sa.Column("actor_role", sa.String(16), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(128), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("event_id", name="uq_audit_log_event_id"),
        mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci",
    )
    op.create_index("ix_audit_log_institution_id_occurred_at_id", "audit_log", ["institution_id", "occurred_at", "id"])
    op.create_index("ix_audit_log_resource_type_resource_id_occurred_at", "audit_log", ["resource_type", "resource_id", "occurred_at"])
    op.create_index("ix_audit_log_actor_id_occurred_at", "audit_log", ["actor_id", "occurred_at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("users")
