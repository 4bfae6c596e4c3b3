"""Bulk jobs: jobs (with their checkpoint), backup batches, case archive, event outbox,
bus alert rules.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-22 01:30:00
"""
from alembic import op
import sqlalchemy as sa

from medflow.db.types import UTCDateTime


revision = '0006'
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('submitted_by', sa.String(length=26), nullable=False),
    sa.Column('submitter_role', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=True),
    sa.Column('done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('checkpoint', sa.String(length=64), nullable=True),
    sa.Column('batches', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('deadline_at', UTCDateTime, nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('started_at', UTCDateTime, nullable=True),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('finished_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_jobs_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('institution_id', 'submitted_by', 'idempotency_key',
                        name=op.f('uq_jobs_institution_id_submitted_by_idempotency_key')),
    **_TABLE,
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_institution_id_created_at_id'), ['institution_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_institution_id_submitted_by_created_at_id'),
                              ['institution_id', 'submitted_by', 'created_at', 'id'], unique=False)

    op.create_table('backup_batches',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('job_id', sa.String(length=26), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('created_by', sa.String(length=26), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('since', UTCDateTime, nullable=True),
    sa.Column('upto', UTCDateTime, nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.String(length=32), nullable=False),
    sa.Column('object_key', sa.String(length=300), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_backup_batches_institution_id_institutions')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_backup_batches_job_id_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backup_batches')),
    sa.UniqueConstraint('job_id', name=op.f('uq_backup_batches_job_id')),
    **_TABLE,
    )
    with op.batch_alter_table('backup_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backup_batches_institution_id_created_at_id'),
                              ['institution_id', 'created_at', 'id'], unique=False)

    op.create_table('case_archive',
    sa.Column('case_id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('job_id', sa.String(length=26), nullable=False),
    sa.Column('objects_moved', sa.Integer(), server_default='0', nullable=False),
    sa.Column('archived_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_archive_case_id_cases')),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_case_archive')),
    **_TABLE,
    )

    op.create_table('event_outbox',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=120), nullable=False),
    sa.Column('event', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_event_outbox_event_id')),
    **_TABLE,
    )
    with op.batch_alter_table('event_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_outbox_created_at'), ['created_at'], unique=False)

    op.create_table('bus_alert_rules',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('metric', sa.String(length=16), nullable=False),
    sa.Column('consumer_group', sa.String(length=100), nullable=False),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=26), nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_bus_alert_rules_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bus_alert_rules')),
    sa.UniqueConstraint('institution_id', 'metric', 'consumer_group',
                        name=op.f('uq_bus_alert_rules_institution_id_metric_consumer_group')),
    **_TABLE,
    )


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop one a foreign key needs first).
    op.drop_table('bus_alert_rules')
    op.drop_table('event_outbox')
    op.drop_table('case_archive')
    op.drop_table('backup_batches')
    op.drop_table('jobs')
