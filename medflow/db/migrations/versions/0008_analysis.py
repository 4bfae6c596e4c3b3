"""Analysis workflow: analysis tasks and review decisions; annotations name the task they came from

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 04:17:28.417263
"""
from alembic import op
import sqlalchemy as sa

from medflow.db.types import UTCDateTime


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table('analysis_tasks',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('case_id', sa.String(length=26), nullable=False),
    sa.Column('item_id', sa.String(length=26), nullable=False),
    sa.Column('model', sa.String(length=32), nullable=False),
    sa.Column('model_version', sa.String(length=16), nullable=False),
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('run', sa.Integer(), server_default='1', nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=True),
    sa.Column('state', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('requeues', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error_code', sa.String(length=48), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('timings', sa.JSON(), nullable=True),
    sa.Column('review_state', sa.String(length=24), server_default='pending', nullable=False),
    sa.Column('requested_by', sa.String(length=26), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('rerun_of', sa.String(length=26), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('started_at', UTCDateTime, nullable=True),
    sa.Column('lease_until', UTCDateTime, nullable=True),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('finished_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_analysis_tasks_case_id_cases')),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_analysis_tasks_institution_id_institutions')),
    sa.ForeignKeyConstraint(['item_id'], ['case_items.id'], name=op.f('fk_analysis_tasks_item_id_case_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_analysis_tasks')),
    sa.UniqueConstraint('institution_id', 'model', 'model_version', 'input_digest', 'run', name='uq_analysis_tasks_input_run'),
    sa.UniqueConstraint('institution_id', 'requested_by', 'idempotency_key', name='uq_analysis_tasks_idempotency'),
    **_TABLE
    )
    with op.batch_alter_table('analysis_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analysis_tasks_institution_id_case_id_created_at_id'), ['institution_id', 'case_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_analysis_tasks_requester', ['institution_id', 'requested_by', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_analysis_tasks_state_updated_at'), ['state', 'updated_at'], unique=False)

    op.create_table('analysis_reviews',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('task_id', sa.String(length=26), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('finding_keys', sa.JSON(), nullable=True),
    sa.Column('edits', sa.JSON(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('written', sa.JSON(), nullable=True),
    sa.Column('reviewer_id', sa.String(length=26), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['analysis_tasks.id'], name=op.f('fk_analysis_reviews_task_id_analysis_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_analysis_reviews')),
    **_TABLE
    )
    with op.batch_alter_table('analysis_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analysis_reviews_task_id_created_at_id'), ['task_id', 'created_at', 'id'], unique=False)

    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_task_id', sa.String(length=26), nullable=True))
        batch_op.add_column(sa.Column('finding_key', sa.String(length=32), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_column('finding_key')
        batch_op.drop_column('source_task_id')
    # dropping a table drops its indexes (MariaDB refuses to drop one a foreign key still uses)
    op.drop_table('analysis_reviews')
    op.drop_table('analysis_tasks')
