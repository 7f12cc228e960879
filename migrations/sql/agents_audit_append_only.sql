-- The audit log is append-only: no UPDATE, DELETE or TRUNCATE, whoever asks (even the
-- table owner). Corrections are new entries. SQLSTATE 42501 (insufficient_privilege)
-- so clients can tell this refusal from a bug.
CREATE OR REPLACE FUNCTION sika_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- no percent placeholders: run_sql_file passes the text through the driver's parser
    RAISE EXCEPTION USING
        MESSAGE = 'the audit log is append-only: ' || TG_OP || ' refused',
        ERRCODE = '42501', TABLE = TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION sika_audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION sika_audit_log_append_only();
