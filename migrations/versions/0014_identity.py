"""Agents' identities: key history, grants awaiting a second admin, revocation, signed requests.

An agent's role and key move out of `agents` into `agent_grants` (several roles an agent,
each pending, active or revoked) and `agent_keys` (every key it held, with its period).
The audit log records each signed request: its id (unique, so a request is spent once),
time, signature and key, all covered by the hash chain.

Revision ID: 0014_identity
Revises: 0013_app_role
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.sqlfile import run_sql_file

revision: str = "0014_identity"
down_revision: str | Sequence[str] | None = "0013_app_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = "'maker', 'approver', 'auditor', 'treasurer', 'admin'"
GRANT_STATUSES = "'pending', 'active', 'revoked'"
REQUEST_ID_PATTERN = "^[0-9a-f]{32}$"


def upgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE shared text;
        BEGIN
            SELECT string_agg(name, ', ') INTO shared FROM (
                SELECT string_agg(name, ' and ' ORDER BY name) AS name FROM agents
                GROUP BY key_fingerprint HAVING count(*) > 1) AS twins;
            IF shared IS NOT NULL THEN
                RAISE EXCEPTION USING MESSAGE =
                    'agents ' || shared || ' share one public key: give each its own first';
            END IF;
        END $$
        """
    )
    op.add_column("agents", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("agents", sa.Column("revoked_by", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_agents_revoked_by_agents"), "agents", "agents", ["revoked_by"], ["id"]
    )
    op.create_check_constraint(
        op.f("ck_agents_revocation_whole"), "agents", "(revoked_at IS NULL) = (revoked_by IS NULL)"
    )

    op.create_table(
        "agent_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column(
            "public_key", sa.Text(), nullable=False, comment="PEM SubjectPublicKeyInfo, Ed25519"
        ),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("added_by", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name=op.f("ck_agent_keys_period_ordered")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_keys_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["added_by"], ["agents.id"], name=op.f("fk_agent_keys_added_by_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_keys")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_agent_keys_fingerprint")),
    )
    op.create_index(
        "ux_agent_keys_current",
        "agent_keys",
        ["agent_id"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )

    op.create_table(
        "agent_grants",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "granted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("confirmed_by", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"role IN ({ROLES})", name=op.f("ck_agent_grants_role_known")),
        sa.CheckConstraint(
            f"status IN ({GRANT_STATUSES})", name=op.f("ck_agent_grants_status_known")
        ),
        sa.CheckConstraint(
            "(status = 'revoked') = (revoked_at IS NOT NULL)",
            name=op.f("ck_agent_grants_revoked_has_time"),
        ),
        sa.CheckConstraint(
            "status <> 'pending' OR confirmed_by IS NULL",
            name=op.f("ck_agent_grants_pending_unconfirmed"),
        ),
        sa.CheckConstraint(
            "(confirmed_by IS NULL) = (confirmed_at IS NULL)",
            name=op.f("ck_agent_grants_confirmation_whole"),
        ),
        sa.CheckConstraint(
            "granted_by IS NULL OR granted_by <> agent_id",
            name=op.f("ck_agent_grants_not_self_granted"),
        ),
        sa.CheckConstraint(
            "confirmed_by IS NULL OR (confirmed_by <> agent_id AND confirmed_by <> granted_by)",
            name=op.f("ck_agent_grants_second_admin_confirms"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_grants_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["granted_by"], ["agents.id"], name=op.f("fk_agent_grants_granted_by_agents")
        ),
        sa.ForeignKeyConstraint(
            ["confirmed_by"], ["agents.id"], name=op.f("fk_agent_grants_confirmed_by_agents")
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by"], ["agents.id"], name=op.f("fk_agent_grants_revoked_by_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_grants")),
    )
    op.create_index(
        "ux_agent_grants_live",
        "agent_grants",
        ["agent_id", "role"],
        unique=True,
        postgresql_where=sa.text("status <> 'revoked'"),
    )

    # every existing agent keeps its key (valid since it was created) and its one role
    op.execute(
        "INSERT INTO agent_keys (agent_id, fingerprint, public_key, valid_from)"
        " SELECT id, key_fingerprint, public_key, created_at FROM agents ORDER BY id"
    )
    op.execute(
        "INSERT INTO agent_grants (agent_id, role, status, granted_at)"
        " SELECT id, role, 'active', created_at FROM agents ORDER BY id"
    )
    op.drop_column("agents", "role")
    op.drop_column("agents", "public_key")
    op.drop_column("agents", "key_fingerprint")

    op.add_column("audit_log", sa.Column("request_id", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("audit_log", sa.Column("signature", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("key_fingerprint", sa.Text(), nullable=True))
    op.create_unique_constraint(op.f("uq_audit_log_request_id"), "audit_log", ["request_id"])
    op.create_check_constraint(
        op.f("ck_audit_log_request_whole"),
        "audit_log",
        "num_nulls(request_id, issued_at, signature, key_fingerprint) IN (0, 4)",
    )
    op.create_check_constraint(
        op.f("ck_audit_log_request_id_format"), "audit_log", f"request_id ~ '{REQUEST_ID_PATTERN}'"
    )
    op.create_check_constraint(
        op.f("ck_audit_log_request_has_agent"),
        "audit_log",
        "request_id IS NULL OR agent_id IS NOT NULL",
    )

    run_sql_file("agents_identity.sql")
    # The application role (when this database has one) changes identities only as the
    # service does: new rows, a revocation, a confirmation, a key closed; never a DELETE.
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sika_app') THEN
                REVOKE ALL ON agents, agent_keys, agent_grants FROM sika_app;
                GRANT SELECT, INSERT ON agents, agent_keys, agent_grants TO sika_app;
                GRANT UPDATE (revoked_at, revoked_by) ON agents TO sika_app;
                GRANT UPDATE (valid_to) ON agent_keys TO sika_app;
                GRANT UPDATE (status, confirmed_by, confirmed_at, revoked_by, revoked_at)
                    ON agent_grants TO sika_app;
            END IF;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM audit_log WHERE request_id IS NOT NULL) THEN
                RAISE EXCEPTION USING MESSAGE = 'the audit log holds signed requests:'
                    ' dropping them would break its hash chain, so 0014 stays';
            END IF;
            -- one role a person and no revocation: what the older schema cannot say is
            -- refused rather than guessed (a revoked agent would act again)
            IF EXISTS (SELECT 1 FROM agents WHERE revoked_at IS NOT NULL)
               OR EXISTS (SELECT 1 FROM agent_grants WHERE status <> 'active'
                          OR role = 'treasurer')
               OR EXISTS (SELECT agent_id FROM agent_grants GROUP BY agent_id
                          HAVING count(*) <> 1) THEN
                RAISE EXCEPTION USING MESSAGE = 'agents hold pending, revoked, treasurer or'
                    ' several grants, which the older schema cannot express, so 0014 stays';
            END IF;
        END $$
        """
    )
    for trigger, table in (
        ("agents_rules", "agents"),
        ("agents_no_delete", "agents"),
        ("agent_keys_rules", "agent_keys"),
        ("agent_keys_no_delete", "agent_keys"),
        ("agent_keys_no_truncate", "agent_keys"),
        ("agent_grants_rules", "agent_grants"),
        ("agent_grants_no_delete", "agent_grants"),
        ("agent_grants_no_truncate", "agent_grants"),
    ):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in (
        "sika_agents_rules",
        "sika_agent_keys_rules",
        "sika_agent_grants_rules",
        "sika_identity_history_only",
    ):
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_constraint(op.f("ck_audit_log_request_has_agent"), "audit_log", type_="check")
    op.drop_constraint(op.f("ck_audit_log_request_id_format"), "audit_log", type_="check")
    op.drop_constraint(op.f("ck_audit_log_request_whole"), "audit_log", type_="check")
    op.drop_constraint(op.f("uq_audit_log_request_id"), "audit_log", type_="unique")
    for column in ("key_fingerprint", "signature", "issued_at", "request_id"):
        op.drop_column("audit_log", column)

    # one role and one key an agent again: its only grant, its key in force
    op.add_column("agents", sa.Column("role", sa.Text(), nullable=True))
    op.add_column("agents", sa.Column("public_key", sa.Text(), nullable=True))
    op.add_column("agents", sa.Column("key_fingerprint", sa.Text(), nullable=True))
    op.execute(
        "UPDATE agents a SET role = (SELECT g.role FROM agent_grants g WHERE g.agent_id = a.id)"
    )
    op.execute(
        "UPDATE agents a SET (public_key, key_fingerprint) = (SELECT k.public_key, k.fingerprint"
        " FROM agent_keys k WHERE k.agent_id = a.id AND k.valid_to IS NULL)"
    )
    for column in ("role", "public_key", "key_fingerprint"):
        op.alter_column("agents", column, nullable=False)
    op.alter_column(
        "agents", "public_key", comment="PEM SubjectPublicKeyInfo, Ed25519", existing_type=sa.Text()
    )
    op.create_check_constraint(
        op.f("ck_agents_role_known"), "agents", "role IN ('maker', 'approver', 'auditor', 'admin')"
    )
    op.drop_index("ux_agent_grants_live", table_name="agent_grants")
    op.drop_table("agent_grants")
    op.drop_index("ux_agent_keys_current", table_name="agent_keys")
    op.drop_table("agent_keys")
    op.drop_constraint(op.f("ck_agents_revocation_whole"), "agents", type_="check")
    op.drop_constraint(op.f("fk_agents_revoked_by_agents"), "agents", type_="foreignkey")
    op.drop_column("agents", "revoked_by")
    op.drop_column("agents", "revoked_at")
