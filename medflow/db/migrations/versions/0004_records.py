"""Clinical records: master patient index, patients, cases, items, versions, annotations,
announcements.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 23:20:55.250479
"""
from alembic import op
import sqlalchemy as sa

from medflow.db.types import UTCDateTime


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table('persons',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_persons')),
    **_TABLE,
    )
    op.create_table('record_versions',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('entity_type', sa.String(length=16), nullable=False),
    sa.Column('entity_id', sa.String(length=26), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('changed_by', sa.String(length=26), nullable=True),
    sa.Column('changed_at', UTCDateTime, nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('old_values', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_versions')),
    sa.UniqueConstraint('entity_type', 'entity_id', 'version', name=op.f('uq_record_versions_entity_type_entity_id_version')),
    **_TABLE,
    )
    op.create_table('announcements',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('audience', sa.String(length=16), server_default='all', nullable=False),
    sa.Column('author_id', sa.String(length=26), nullable=False),
    sa.Column('published_at', UTCDateTime, nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('deleted_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_announcements_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcements')),
    **_TABLE,
    )
    with op.batch_alter_table('announcements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_announcements_institution_id_published_at_id'), ['institution_id', 'published_at', 'id'], unique=False)

    op.create_table('patients',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('person_id', sa.String(length=26), nullable=False),
    sa.Column('mrn', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('sex', sa.String(length=8), server_default='unknown', nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('user_id', sa.String(length=26), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('deleted_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_patients_institution_id_institutions')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_patients_person_id_persons')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_patients_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('institution_id', 'mrn', name=op.f('uq_patients_institution_id_mrn')),
    **_TABLE,
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_institution_id_display_name_id'), ['institution_id', 'display_name', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_patients_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_patients_user_id'), ['user_id'], unique=False)

    op.create_table('cases',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('patient_id', sa.String(length=26), nullable=False),
    sa.Column('exam_type', sa.String(length=32), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('exam_time', UTCDateTime, nullable=False),
    sa.Column('department_id', sa.String(length=26), nullable=True),
    sa.Column('doctor_id', sa.String(length=26), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='draft', nullable=False),
    sa.Column('annotation_status', sa.String(length=16), server_default='none', nullable=False),
    sa.Column('quality_label', sa.String(length=16), server_default='unchecked', nullable=False),
    sa.Column('title', sa.String(length=200), server_default='', nullable=False),
    sa.Column('diagnosis_codes', sa.JSON(), nullable=True),
    sa.Column('released_summary', sa.Text(), nullable=True),
    sa.Column('released_at', UTCDateTime, nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_by', sa.String(length=26), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('deleted_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_cases_department_id_departments')),
    sa.ForeignKeyConstraint(['doctor_id'], ['users.id'], name=op.f('fk_cases_doctor_id_users')),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_cases_institution_id_institutions')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_cases_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    **_TABLE,
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_institution_id_annotation_status_exam_time_id'), ['institution_id', 'annotation_status', 'exam_time', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_institution_id_department_id_exam_time_id'), ['institution_id', 'department_id', 'exam_time', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_institution_id_doctor_id_exam_time_id'), ['institution_id', 'doctor_id', 'exam_time', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_institution_id_exam_time_id'), ['institution_id', 'exam_time', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_institution_id_exam_type_exam_time_id'), ['institution_id', 'exam_type', 'exam_time', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_institution_id_modality_exam_time_id'), ['institution_id', 'modality', 'exam_time', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_institution_id_patient_id_exam_time_id'), ['institution_id', 'patient_id', 'exam_time', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_institution_id_quality_label_exam_time_id'), ['institution_id', 'quality_label', 'exam_time', 'id'], unique=False)

    op.create_table('patient_identifiers',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('person_id', sa.String(length=26), nullable=False),
    sa.Column('patient_id', sa.String(length=26), nullable=True),
    sa.Column('system', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=128), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_identifiers_patient_id_patients')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_patient_identifiers_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_identifiers')),
    sa.UniqueConstraint('system', 'value', name=op.f('uq_patient_identifiers_system_value')),
    **_TABLE,
    )
    with op.batch_alter_table('patient_identifiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_identifiers_person_id'), ['person_id'], unique=False)

    op.create_table('case_diagnoses',
    sa.Column('case_id', sa.String(length=26), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('exam_time', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_diagnoses_case_id_cases')),
    sa.PrimaryKeyConstraint('case_id', 'code', name=op.f('pk_case_diagnoses')),
    **_TABLE,
    )
    with op.batch_alter_table('case_diagnoses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_diagnoses_institution_id_code_exam_time_case_id'), ['institution_id', 'code', 'exam_time', 'case_id'], unique=False)

    op.create_table('case_items',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('case_id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), server_default='', nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_by', sa.String(length=26), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('deleted_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_items_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_items')),
    **_TABLE,
    )
    with op.batch_alter_table('case_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_items_case_id_kind_id'), ['case_id', 'kind', 'id'], unique=False)

    op.create_table('annotations',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('case_id', sa.String(length=26), nullable=False),
    sa.Column('item_id', sa.String(length=26), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('shape', sa.String(length=16), nullable=True),
    sa.Column('coordinates', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='draft', nullable=False),
    sa.Column('author_id', sa.String(length=26), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('deleted_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_annotations_case_id_cases')),
    sa.ForeignKeyConstraint(['item_id'], ['case_items.id'], name=op.f('fk_annotations_item_id_case_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations')),
    **_TABLE,
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotations_case_id_id'), ['case_id', 'id'], unique=False)



def downgrade() -> None:
    # Dropping a table drops its indexes; children first.
    for table in ("annotations", "case_items", "case_diagnoses", "record_versions", "cases",
                  "patient_identifiers", "patients", "announcements", "persons"):
        op.drop_table(table)
