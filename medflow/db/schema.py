"""The tables, as SQLAlchemy Core metadata. Alembic migrations create exactly this schema
(a test compares them). SQL stays TiDB-compatible: no triggers, no stored procedures,
no spatial or full-text indexes, utf8mb4 everywhere, ULID keys (no auto-increment hot spot).
"""

from __future__ import annotations

import sqlalchemy as sa

from medflow.db.types import UTCDateTime, id_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)

ROLES = ("admin", "doctor", "patient")
USER_STATUSES = ("active", "disabled", "deleted")

institutions = sa.Table(
    "institutions", metadata,
    id_column(primary_key=True),
    sa.Column("code", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False, server_default="hospital"),
    sa.Column("region", sa.String(100), nullable=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

departments = sa.Table(
    "departments", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("institution_id", "code"),
    sa.Index(None, "institution_id", "name", "id"),
)

users = sa.Table(
    "users", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("department_id", sa.ForeignKey("departments.id"), nullable=True),
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
    sa.UniqueConstraint("institution_id", "username"),
    sa.CheckConstraint("role IN ('admin', 'doctor', 'patient')", name="role"),
    sa.CheckConstraint("status IN ('active', 'disabled', 'deleted')", name="status"),
    sa.Index(None, "institution_id", "role", "status", "id"),
    sa.Index(None, "institution_id", "department_id", "id"),
)

# Append-only: the code offers insert and read, nothing else; in production the
# application's database user is granted INSERT and SELECT only on this table.
audit_log = sa.Table(
    "audit_log", metadata,
    id_column(primary_key=True),
    sa.Column("event_id", sa.String(128), nullable=False, unique=True),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    id_column("institution_id", nullable=True),
    id_column("actor_id", nullable=True),
    sa.Column("actor_role", sa.String(16), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(128), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=True),
    sa.Column("details", sa.JSON, nullable=True),
    sa.Index(None, "institution_id", "occurred_at", "id"),
    sa.Index(None, "resource_type", "resource_id", "occurred_at"),
    sa.Index(None, "actor_id", "occurred_at"),
)

# --- accounts: credentials, refresh tokens, login policy, login attempts ----------------

credentials = sa.Table(
    "credentials", metadata,
    id_column("user_id", sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("password_changed_at", UTCDateTime, nullable=False),
    sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", UTCDateTime, nullable=True),
    sa.Column("last_login_at", UTCDateTime, nullable=True),
)

# Opaque refresh tokens, stored as SHA-256 of their secret. A family is one login's chain
# of rotations; presenting a used token again revokes the whole family.
refresh_tokens = sa.Table(
    "refresh_tokens", metadata,
    id_column(primary_key=True),
    id_column("family_id", nullable=False),
    id_column("user_id", sa.ForeignKey("users.id"), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_reason", sa.String(32), nullable=True),
    sa.Index(None, "family_id"),
    sa.Index(None, "user_id", "revoked_at"),
)

login_policies = sa.Table(
    "login_policies", metadata,
    id_column("institution_id", sa.ForeignKey("institutions.id"), primary_key=True),
    sa.Column("min_length", sa.Integer, nullable=False),
    sa.Column("require_upper", sa.Boolean, nullable=False),
    sa.Column("require_lower", sa.Boolean, nullable=False),
    sa.Column("require_digit", sa.Boolean, nullable=False),
    sa.Column("require_symbol", sa.Boolean, nullable=False),
    sa.Column("max_failed_attempts", sa.Integer, nullable=False),
    sa.Column("lockout_s", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    id_column("updated_by", nullable=True),
)

login_attempts = sa.Table(
    "login_attempts", metadata,
    id_column(primary_key=True),
    id_column("institution_id", nullable=True),
    id_column("user_id", nullable=True),
    sa.Column("client_address", sa.String(64), nullable=True),
    sa.Column("outcome", sa.String(24), nullable=False),
    sa.Column("attempted_at", UTCDateTime, nullable=False),
    sa.Index(None, "user_id", "attempted_at"),
    sa.Index(None, "institution_id", "attempted_at"),
)

# --- clinical records: master patient index, patients, cases, items, versions, annotations --

PATIENT_SEXES = ("female", "male", "other", "unknown")
CASE_STATUSES = ("draft", "final", "amended")
ANNOTATION_STATUSES = ("none", "in_progress", "annotated", "reviewed")
QUALITY_LABELS = ("unchecked", "good", "incomplete", "poor")
ITEM_KINDS = ("report", "lab_panel", "vitals", "imaging_study")

# One row per real person across the group; patients of several institutions point to it.
persons = sa.Table(
    "persons", metadata,
    id_column(primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

patients = sa.Table(
    "patients", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("person_id", sa.ForeignKey("persons.id"), nullable=False),
    sa.Column("mrn", sa.String(64), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("sex", sa.String(8), nullable=False, server_default="unknown"),
    sa.Column("birth_date", sa.Date, nullable=True),
    id_column("user_id", sa.ForeignKey("users.id"), nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("institution_id", "mrn"),
    sa.Index(None, "person_id"),
    sa.Index(None, "institution_id", "display_name", "id"),
    sa.Index(None, "user_id"),
)

# Every identifier a person is known under (an MRN of each hospital, a national id, ...).
patient_identifiers = sa.Table(
    "patient_identifiers", metadata,
    id_column(primary_key=True),
    id_column("person_id", sa.ForeignKey("persons.id"), nullable=False),
    id_column("patient_id", sa.ForeignKey("patients.id"), nullable=True),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("value", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("system", "value"),
    sa.Index(None, "person_id"),
)

cases = sa.Table(
    "cases", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("patient_id", sa.ForeignKey("patients.id"), nullable=False),
    sa.Column("exam_type", sa.String(32), nullable=False),
    sa.Column("modality", sa.String(16), nullable=False),
    sa.Column("exam_time", UTCDateTime, nullable=False),
    id_column("department_id", sa.ForeignKey("departments.id"), nullable=True),
    id_column("doctor_id", sa.ForeignKey("users.id"), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
    sa.Column("annotation_status", sa.String(16), nullable=False, server_default="none"),
    sa.Column("quality_label", sa.String(16), nullable=False, server_default="unchecked"),
    sa.Column("title", sa.String(200), nullable=False, server_default=""),
    sa.Column("diagnosis_codes", sa.JSON, nullable=True),
    sa.Column("released_summary", sa.Text, nullable=True),
    sa.Column("released_at", UTCDateTime, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    id_column("created_by", nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    # Search indexes by the leftmost-prefix rule: institution, one equality filter, then the
    # keyset order (exam_time, id).
    sa.Index(None, "institution_id", "exam_time", "id"),
    sa.Index(None, "institution_id", "patient_id", "exam_time", "id"),
    sa.Index(None, "institution_id", "doctor_id", "exam_time", "id"),
    sa.Index(None, "institution_id", "department_id", "exam_time", "id"),
    sa.Index(None, "institution_id", "modality", "exam_time", "id"),
    sa.Index(None, "institution_id", "exam_type", "exam_time", "id"),
    sa.Index(None, "institution_id", "annotation_status", "exam_time", "id"),
    sa.Index(None, "institution_id", "quality_label", "exam_time", "id"),
)

# Diagnosis codes of a case, one row each, for search by diagnosis.
case_diagnoses = sa.Table(
    "case_diagnoses", metadata,
    id_column("case_id", sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("code", sa.String(16), primary_key=True),
    id_column("institution_id", nullable=False),
    sa.Column("exam_time", UTCDateTime, nullable=False),
    sa.Index(None, "institution_id", "code", "exam_time", "case_id"),
)

case_items = sa.Table(
    "case_items", metadata,
    id_column(primary_key=True),
    id_column("case_id", sa.ForeignKey("cases.id"), nullable=False),
    id_column("institution_id", nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("title", sa.String(200), nullable=False, server_default=""),
    sa.Column("content", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    id_column("created_by", nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Index(None, "case_id", "kind", "id"),
)

# The previous values of every edited record: who, when, why, and what it was before.
record_versions = sa.Table(
    "record_versions", metadata,
    id_column(primary_key=True),
    id_column("institution_id", nullable=False),
    sa.Column("entity_type", sa.String(16), nullable=False),
    id_column("entity_id", nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    id_column("changed_by", nullable=True),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("old_values", sa.JSON, nullable=False),
    sa.UniqueConstraint("entity_type", "entity_id", "version"),
)

annotations = sa.Table(
    "annotations", metadata,
    id_column(primary_key=True),
    id_column("institution_id", nullable=False),
    id_column("case_id", sa.ForeignKey("cases.id"), nullable=False),
    id_column("item_id", sa.ForeignKey("case_items.id"), nullable=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("shape", sa.String(16), nullable=True),
    sa.Column("coordinates", sa.JSON, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
    id_column("author_id", nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    # An annotation accepted from a model's output: the analysis task and its finding.
    id_column("source_task_id", nullable=True),
    sa.Column("finding_key", sa.String(32), nullable=True),
    sa.Index(None, "case_id", "id"),
)

announcements = sa.Table(
    "announcements", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("audience", sa.String(16), nullable=False, server_default="all"),
    id_column("author_id", nullable=False),
    sa.Column("published_at", UTCDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Index(None, "institution_id", "published_at", "id"),
)

# --- Imaging: DICOM Patient / Study / Series / Instance (issue #5) -------------------------
# A study belongs to one patient of one institution (linked through the MPI by the DICOM
# PatientID, the institution's MRN). UIDs are unique within an institution. An instance row
# exists only once its object is stored (object first, then row; see medflow/imaging/ingest.py).

imaging_studies = sa.Table(
    "imaging_studies", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("patient_id", sa.ForeignKey("patients.id"), nullable=False),
    sa.Column("study_uid", sa.String(64), nullable=False),
    # StudyDate, or the day the study was first stored when the header has none (the
    # header JSON keeps what was sent); the search order is (study_date DESC, id DESC).
    sa.Column("study_date", sa.Date, nullable=False),
    sa.Column("study_time", sa.String(16), nullable=True),
    sa.Column("accession_number", sa.String(16), nullable=True),
    sa.Column("description", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("institution_id", "study_uid"),
    # QIDO indexes by the leftmost-prefix rule: institution, one equality filter, then the
    # keyset order (study_date, id).
    sa.Index(None, "institution_id", "study_date", "id"),
    sa.Index(None, "institution_id", "patient_id", "study_date", "id"),
    sa.Index(None, "institution_id", "accession_number", "study_date", "id"),
)

# One row per (study, modality): the study search by modality reads this index, as case
# searches read case_diagnoses.
imaging_study_modalities = sa.Table(
    "imaging_study_modalities", metadata,
    id_column("study_id", sa.ForeignKey("imaging_studies.id"), primary_key=True),
    sa.Column("modality", sa.String(16), primary_key=True),
    id_column("institution_id", nullable=False),
    sa.Column("study_date", sa.Date, nullable=False),
    # named: the conventional name passes MySQL's 64-character limit
    sa.Index("ix_imaging_study_modalities_search", "institution_id", "modality", "study_date", "study_id"),
)

imaging_series = sa.Table(
    "imaging_series", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("study_id", sa.ForeignKey("imaging_studies.id"), nullable=False),
    sa.Column("series_uid", sa.String(64), nullable=False),
    sa.Column("modality", sa.String(16), nullable=False),
    sa.Column("series_number", sa.Integer, nullable=True),
    sa.Column("description", sa.String(64), nullable=True),
    sa.Column("body_part", sa.String(16), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("institution_id", "series_uid"),
    sa.Index(None, "study_id", "series_number", "id"),
)

imaging_instances = sa.Table(
    "imaging_instances", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("study_id", sa.ForeignKey("imaging_studies.id"), nullable=False),
    id_column("series_id", sa.ForeignKey("imaging_series.id"), nullable=False),
    sa.Column("sop_instance_uid", sa.String(64), nullable=False),
    sa.Column("sop_class_uid", sa.String(64), nullable=False),
    sa.Column("instance_number", sa.Integer, nullable=False, server_default="0"),
    sa.Column("transfer_syntax_uid", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=True),
    sa.Column("columns", sa.Integer, nullable=True),
    sa.Column("frames", sa.Integer, nullable=False, server_default="1"),
    sa.Column("object_key", sa.String(300), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("header", sa.JSON, nullable=False),      # DICOM JSON model, bulk data left out
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("institution_id", "sop_instance_uid"),
    sa.Index(None, "series_id", "instance_number", "id"),
    sa.Index(None, "study_id"),
)

# --- Knowledge assistant (medflow/knowledge): one knowledge base per institution --------
# A document's chunks are written under a new version and become visible only when
# ``current_version`` is switched to it, in the same transaction that publishes the new
# index generation; a half-ingested version is never visible.

knowledge_documents = sa.Table(
    "knowledge_documents", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("media_type", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),          # processing | ready | failed | deleted
    sa.Column("latest_version", sa.Integer, nullable=False),     # the last uploaded
    sa.Column("current_version", sa.Integer, nullable=True),     # the one answered from (null: none yet)
    sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_code", sa.String(64), nullable=True),
    id_column("uploaded_by", nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Index(None, "institution_id", "created_at", "id"),
)

knowledge_chunks = sa.Table(
    "knowledge_chunks", metadata,
    id_column(primary_key=True),
    id_column("institution_id", nullable=False),
    id_column("document_id", sa.ForeignKey("knowledge_documents.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("section", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.UniqueConstraint("document_id", "version", "position"),
)

knowledge_indexes = sa.Table(
    "knowledge_indexes", metadata,
    id_column("institution_id", sa.ForeignKey("institutions.id"), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("object_key", sa.String(300), nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

knowledge_conversations = sa.Table(
    "knowledge_conversations", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("user_id", sa.ForeignKey("users.id"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "user_id", "updated_at", "id"),
)

knowledge_answers = sa.Table(
    "knowledge_answers", metadata,
    id_column(primary_key=True),
    id_column("conversation_id", sa.ForeignKey("knowledge_conversations.id"), nullable=False),
    id_column("institution_id", nullable=False),
    id_column("user_id", nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),            # llm | extractive
    sa.Column("citations", sa.JSON, nullable=False),
    sa.Column("timings", sa.JSON, nullable=False),
    sa.Column("rating", sa.SmallInteger, nullable=True),          # 1..5, by the asking doctor
    sa.Column("rating_comment", sa.String(1000), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "conversation_id", "created_at", "id"),
)

# --- Bulk jobs (issue 6) ----------------------------------------------------------------

JOB_KINDS = ("delete", "archive", "export")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")

# One row per submitted job; it is also the job's checkpoint: each batch updates
# ``checkpoint`` (the last case id handled) and the counts in the batch's own transaction.
jobs = sa.Table(
    "jobs", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="queued"),
    id_column("submitted_by", nullable=False),
    sa.Column("submitter_role", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(100), nullable=True),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("total", sa.Integer, nullable=True),
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("checkpoint", sa.String(64), nullable=True),
    sa.Column("batches", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("deadline_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("institution_id", "submitted_by", "idempotency_key"),
    sa.Index(None, "institution_id", "created_at", "id"),
    sa.Index(None, "institution_id", "submitted_by", "created_at", "id"),
)

# Offline export packages (zip of xlsx/CSV + manifest.json) in the object store.
backup_batches = sa.Table(
    "backup_batches", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("job_id", sa.ForeignKey("jobs.id"), nullable=False, unique=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("format", sa.String(8), nullable=False),
    id_column("created_by", nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("since", UTCDateTime, nullable=True),
    sa.Column("upto", UTCDateTime, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("bucket", sa.String(32), nullable=False),
    sa.Column("object_key", sa.String(300), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Index(None, "institution_id", "created_at", "id"),
)

# Cases moved to the archive tier by an archive job (the case row stays; its objects moved).
case_archive = sa.Table(
    "case_archive", metadata,
    id_column("case_id", sa.ForeignKey("cases.id"), primary_key=True),
    id_column("institution_id", nullable=False),
    id_column("job_id", nullable=False),
    sa.Column("objects_moved", sa.Integer, nullable=False, server_default="0"),
    sa.Column("archived_at", UTCDateTime, nullable=False),
)

# Transactional outbox: events written in the same transaction as the change they announce,
# published after the commit (and re-published by the sweep if that publish was lost).
event_outbox = sa.Table(
    "event_outbox", metadata,
    id_column(primary_key=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("event_type", sa.String(120), nullable=False),
    sa.Column("event", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "created_at"),
)

# Admins' alert thresholds on consumer lag and dead-letter counts, per consumer group.
bus_alert_rules = sa.Table(
    "bus_alert_rules", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    sa.Column("metric", sa.String(16), nullable=False),
    sa.Column("consumer_group", sa.String(100), nullable=False),
    sa.Column("threshold", sa.Integer, nullable=False),
    id_column("updated_by", nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("institution_id", "metric", "consumer_group"),
)


# --- Analysis workflow (medflow/analysis): model runs on exam items and doctors' reviews ---
ANALYSIS_STATES = ("queued", "running", "succeeded", "failed")
REVIEW_STATES = ("pending", "accepted", "partially_accepted", "rejected", "rerun")

# One row per model run. ``input_digest`` names the exact input (model, version, the exam
# item's version and content or image digest, parameters); the unique (institution,
# model, version, input, run) makes a repeated submission find its task. A re-run is the
# next ``run`` of the same input. ``result`` is the model's output as received and
# normalised, never changed afterwards (reviews are rows of their own).
analysis_tasks = sa.Table(
    "analysis_tasks", metadata,
    id_column(primary_key=True),
    id_column("institution_id", sa.ForeignKey("institutions.id"), nullable=False),
    id_column("case_id", sa.ForeignKey("cases.id"), nullable=False),
    id_column("item_id", sa.ForeignKey("case_items.id"), nullable=False),
    sa.Column("model", sa.String(32), nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column("input_digest", sa.String(64), nullable=False),
    sa.Column("run", sa.Integer, nullable=False, server_default="1"),
    sa.Column("parameters", sa.JSON, nullable=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="queued"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("requeues", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_code", sa.String(48), nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("timings", sa.JSON, nullable=True),
    sa.Column("review_state", sa.String(24), nullable=False, server_default="pending"),
    id_column("requested_by", nullable=False),
    sa.Column("idempotency_key", sa.String(100), nullable=True),
    id_column("rerun_of", nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    # named: the conventional name passes MySQL's 64-character limit
    sa.UniqueConstraint("institution_id", "model", "model_version", "input_digest", "run",
                        name="uq_analysis_tasks_input_run"),
    sa.UniqueConstraint("institution_id", "requested_by", "idempotency_key", name="uq_analysis_tasks_idempotency"),
    sa.Index(None, "institution_id", "case_id", "created_at", "id"),
    sa.Index("ix_analysis_tasks_requester", "institution_id", "requested_by", "created_at", "id"),
    sa.Index(None, "state", "updated_at"),
)

# Each review decision on a task: who, when, what (accept / edit / reject / rerun), which
# findings, the edited values, and what it wrote into the record.
analysis_reviews = sa.Table(
    "analysis_reviews", metadata,
    id_column(primary_key=True),
    id_column("institution_id", nullable=False),
    id_column("task_id", sa.ForeignKey("analysis_tasks.id"), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("finding_keys", sa.JSON, nullable=True),
    sa.Column("edits", sa.JSON, nullable=True),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("written", sa.JSON, nullable=True),
    id_column("reviewer_id", nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "task_id", "created_at", "id"),
)
