"""Imaging: DICOM studies (with their modalities), series and instances

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 01:15:05.390618
"""
from alembic import op
import sqlalchemy as sa

from medflow.db.types import UTCDateTime


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table('imaging_studies',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('patient_id', sa.String(length=26), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('study_date', sa.Date(), nullable=False),
    sa.Column('study_time', sa.String(length=16), nullable=True),
    sa.Column('accession_number', sa.String(length=16), nullable=True),
    sa.Column('description', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_imaging_studies_institution_id_institutions')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_imaging_studies_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imaging_studies')),
    sa.UniqueConstraint('institution_id', 'study_uid', name=op.f('uq_imaging_studies_institution_id_study_uid')),
    **_TABLE,
    )
    with op.batch_alter_table('imaging_studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_imaging_studies_institution_id_accession_number_study_date_id'), ['institution_id', 'accession_number', 'study_date', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_imaging_studies_institution_id_patient_id_study_date_id'), ['institution_id', 'patient_id', 'study_date', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_imaging_studies_institution_id_study_date_id'), ['institution_id', 'study_date', 'id'], unique=False)

    op.create_table('imaging_series',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('study_id', sa.String(length=26), nullable=False),
    sa.Column('series_uid', sa.String(length=64), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('series_number', sa.Integer(), nullable=True),
    sa.Column('description', sa.String(length=64), nullable=True),
    sa.Column('body_part', sa.String(length=16), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_imaging_series_institution_id_institutions')),
    sa.ForeignKeyConstraint(['study_id'], ['imaging_studies.id'], name=op.f('fk_imaging_series_study_id_imaging_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imaging_series')),
    sa.UniqueConstraint('institution_id', 'series_uid', name=op.f('uq_imaging_series_institution_id_series_uid')),
    **_TABLE,
    )
    with op.batch_alter_table('imaging_series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_imaging_series_study_id_series_number_id'), ['study_id', 'series_number', 'id'], unique=False)

    op.create_table('imaging_study_modalities',
    sa.Column('study_id', sa.String(length=26), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('study_date', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['imaging_studies.id'], name=op.f('fk_imaging_study_modalities_study_id_imaging_studies')),
    sa.PrimaryKeyConstraint('study_id', 'modality', name=op.f('pk_imaging_study_modalities')),
    **_TABLE,
    )
    with op.batch_alter_table('imaging_study_modalities', schema=None) as batch_op:
        batch_op.create_index('ix_imaging_study_modalities_search', ['institution_id', 'modality', 'study_date', 'study_id'], unique=False)

    op.create_table('imaging_instances',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('study_id', sa.String(length=26), nullable=False),
    sa.Column('series_id', sa.String(length=26), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('instance_number', sa.Integer(), server_default='0', nullable=False),
    sa.Column('transfer_syntax_uid', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('columns', sa.Integer(), nullable=True),
    sa.Column('frames', sa.Integer(), server_default='1', nullable=False),
    sa.Column('object_key', sa.String(length=300), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('header', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_imaging_instances_institution_id_institutions')),
    sa.ForeignKeyConstraint(['series_id'], ['imaging_series.id'], name=op.f('fk_imaging_instances_series_id_imaging_series')),
    sa.ForeignKeyConstraint(['study_id'], ['imaging_studies.id'], name=op.f('fk_imaging_instances_study_id_imaging_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imaging_instances')),
    sa.UniqueConstraint('institution_id', 'sop_instance_uid', name=op.f('uq_imaging_instances_institution_id_sop_instance_uid')),
    **_TABLE,
    )
    with op.batch_alter_table('imaging_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_imaging_instances_series_id_instance_number_id'), ['series_id', 'instance_number', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_imaging_instances_study_id'), ['study_id'], unique=False)



def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs).
    for table in ("imaging_instances", "imaging_study_modalities", "imaging_series", "imaging_studies"):
        op.drop_table(table)
