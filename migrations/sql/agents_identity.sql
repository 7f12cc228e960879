-- Agents' identities, enforced by the database whoever writes: agents, grants and keys are
-- history (no DELETE; only the changes a revocation, confirmation or key rotation makes),
-- incompatible roles never meet on one agent, and a privileged grant needs a second admin
-- once two exist. The incompatible pairs are those of core.models.INCOMPATIBLE_ROLES.
-- SQLSTATE 23514 (check_violation) for a broken rule, 42501 for a forbidden change.
-- No percent placeholders: run_sql_file passes the text through the driver's parser.

CREATE FUNCTION sika_identity_history_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = TG_TABLE_NAME || ' is history: ' || TG_OP || ' refused',
        ERRCODE = '42501', TABLE = TG_TABLE_NAME;
END;
$$;

CREATE FUNCTION sika_agents_rules() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.name <> OLD.name OR NEW.created_at <> OLD.created_at
       OR (OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
                                           OR NEW.revoked_by IS DISTINCT FROM OLD.revoked_by))
    THEN
        RAISE EXCEPTION USING
            MESSAGE = 'agent ' || OLD.name || ': only a revocation may change an agent, once',
            ERRCODE = '42501', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION sika_agent_keys_rules() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.agent_id <> OLD.agent_id OR NEW.fingerprint <> OLD.fingerprint
       OR NEW.public_key <> OLD.public_key OR NEW.valid_from <> OLD.valid_from
       OR NEW.added_by IS DISTINCT FROM OLD.added_by OR OLD.valid_to IS NOT NULL
    THEN
        RAISE EXCEPTION USING
            MESSAGE = 'key ' || OLD.fingerprint || ' is history: only a key in force may be closed',
            ERRCODE = '42501', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION sika_agent_grants_rules() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    conflicting text;
    admins integer;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.agent_id <> OLD.agent_id OR NEW.role <> OLD.role
           OR NEW.granted_by IS DISTINCT FROM OLD.granted_by OR NEW.granted_at <> OLD.granted_at
           OR OLD.status = 'revoked'
           OR (OLD.status = 'active' AND NEW.status = 'pending')
           OR (OLD.confirmed_by IS NOT NULL
               AND NEW.confirmed_by IS DISTINCT FROM OLD.confirmed_by)
        THEN
            RAISE EXCEPTION USING
                MESSAGE = 'grant ' || OLD.id || ': only confirming or revoking it may change it',
                ERRCODE = '42501', TABLE = TG_TABLE_NAME;
        END IF;
    END IF;
    IF NEW.status = 'revoked' THEN
        RETURN NEW;
    END IF;
    -- one grant change per agent at a time, so two concurrent grants cannot both pass
    PERFORM 1 FROM agents WHERE id = NEW.agent_id FOR UPDATE;
    SELECT string_agg(g.role, ', ') INTO conflicting
      FROM agent_grants g
     WHERE g.agent_id = NEW.agent_id AND g.id <> NEW.id AND g.status <> 'revoked'
       AND (NEW.role, g.role) IN (('maker', 'approver'), ('approver', 'maker'),
                                  ('admin', 'maker'), ('maker', 'admin'),
                                  ('admin', 'approver'), ('approver', 'admin'));
    IF conflicting IS NOT NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = 'an agent cannot hold both ' || NEW.role || ' and ' || conflicting,
            ERRCODE = '23514', TABLE = TG_TABLE_NAME;
    END IF;
    IF NEW.status = 'active' AND NEW.confirmed_by IS NULL
       AND NEW.role IN ('approver', 'treasurer', 'admin')
       AND (TG_OP = 'INSERT' OR OLD.status <> 'active')
    THEN
        SELECT count(DISTINCT g.agent_id) INTO admins
          FROM agent_grants g JOIN agents a ON a.id = g.agent_id
         WHERE g.role = 'admin' AND g.status = 'active' AND a.revoked_at IS NULL
           AND g.agent_id <> NEW.agent_id;
        IF admins >= 2 THEN
            RAISE EXCEPTION USING
                MESSAGE = 'granting ' || NEW.role || ' needs a second admin''s confirmation',
                ERRCODE = '23514', TABLE = TG_TABLE_NAME;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER agents_rules
    BEFORE UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION sika_agents_rules();
CREATE TRIGGER agents_no_delete
    BEFORE DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION sika_identity_history_only();

CREATE TRIGGER agent_keys_rules
    BEFORE UPDATE ON agent_keys
    FOR EACH ROW EXECUTE FUNCTION sika_agent_keys_rules();
CREATE TRIGGER agent_keys_no_delete
    BEFORE DELETE ON agent_keys
    FOR EACH ROW EXECUTE FUNCTION sika_identity_history_only();
CREATE TRIGGER agent_keys_no_truncate
    BEFORE TRUNCATE ON agent_keys
    FOR EACH STATEMENT EXECUTE FUNCTION sika_identity_history_only();

CREATE TRIGGER agent_grants_rules
    BEFORE INSERT OR UPDATE ON agent_grants
    FOR EACH ROW EXECUTE FUNCTION sika_agent_grants_rules();
CREATE TRIGGER agent_grants_no_delete
    BEFORE DELETE ON agent_grants
    FOR EACH ROW EXECUTE FUNCTION sika_identity_history_only();
CREATE TRIGGER agent_grants_no_truncate
    BEFORE TRUNCATE ON agent_grants
    FOR EACH STATEMENT EXECUTE FUNCTION sika_identity_history_only();
