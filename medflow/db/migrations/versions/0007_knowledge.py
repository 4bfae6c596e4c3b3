"""Knowledge assistant: documents, chunks, index generations, conversations and answers

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-22 01:42:16.387451
"""
from alembic import op
import sqlalchemy as sa

from medflow.db.types import UTCDateTime


revision = '0007'
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table('knowledge_documents',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=True),
    sa.Column('chunks', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('uploaded_by', sa.String(length=26), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('deleted_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_knowledge_documents_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_documents')),
    **_TABLE,
    )
    with op.batch_alter_table('knowledge_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_documents_institution_id_created_at_id'), ['institution_id', 'created_at', 'id'], unique=False)

    op.create_table('knowledge_indexes',
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('object_key', sa.String(length=300), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_knowledge_indexes_institution_id_institutions')),
    sa.PrimaryKeyConstraint('institution_id', name=op.f('pk_knowledge_indexes')),
    **_TABLE,
    )
    op.create_table('knowledge_chunks',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('document_id', sa.String(length=26), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('section', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['knowledge_documents.id'], name=op.f('fk_knowledge_chunks_document_id_knowledge_documents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_chunks')),
    sa.UniqueConstraint('document_id', 'version', 'position', name=op.f('uq_knowledge_chunks_document_id_version_position')),
    **_TABLE,
    )
    op.create_table('knowledge_conversations',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('user_id', sa.String(length=26), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_knowledge_conversations_institution_id_institutions')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_knowledge_conversations_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_conversations')),
    **_TABLE,
    )
    with op.batch_alter_table('knowledge_conversations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_conversations_user_id_updated_at_id'), ['user_id', 'updated_at', 'id'], unique=False)

    op.create_table('knowledge_answers',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('conversation_id', sa.String(length=26), nullable=False),
    sa.Column('institution_id', sa.String(length=26), nullable=False),
    sa.Column('user_id', sa.String(length=26), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('citations', sa.JSON(), nullable=False),
    sa.Column('timings', sa.JSON(), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=True),
    sa.Column('rating_comment', sa.String(length=1000), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['knowledge_conversations.id'], name=op.f('fk_knowledge_answers_conversation_id_knowledge_conversations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_answers')),
    **_TABLE,
    )
    with op.batch_alter_table('knowledge_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_answers_conversation_id_created_at_id'), ['conversation_id', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop one a foreign key uses).
    op.drop_table('knowledge_answers')
    op.drop_table('knowledge_conversations')
    op.drop_table('knowledge_chunks')
    op.drop_table('knowledge_indexes')
    op.drop_table('knowledge_documents')
