-- A payout line's state only moves forward (docs/architecture.md#payout-states).
-- The allowed moves:
--   created   -> queued
--   queued    -> submitted
--   submitted -> pending | unknown | succeeded | failed
--   pending   -> unknown | succeeded | failed
--   unknown   -> pending | succeeded | failed
--   failed    -> queued, only as a new attempt (attempt + 1, new reference)
-- A line's payee, amount, phone number, batch and scope never change once written.
CREATE OR REPLACE FUNCTION payout_lines_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.batch_id IS DISTINCT FROM OLD.batch_id
       OR NEW.seq IS DISTINCT FROM OLD.seq
       OR NEW.scope IS DISTINCT FROM OLD.scope
       OR NEW.payee IS DISTINCT FROM OLD.payee
       OR NEW.amount IS DISTINCT FROM OLD.amount
       OR NEW.msisdn_enc IS DISTINCT FROM OLD.msisdn_enc
       OR NEW.operator IS DISTINCT FROM OLD.operator THEN
        RAISE EXCEPTION USING MESSAGE = 'payout line ' || OLD.id
            || ': payee, amount, phone and operator are immutable', ERRCODE = '23514';
    END IF;
    NEW.updated_at := now();
    IF NEW.status = OLD.status THEN
        IF NEW.attempt <> OLD.attempt OR NEW.reference <> OLD.reference
           OR NEW.pending_id <> OLD.pending_id THEN
            RAISE EXCEPTION USING MESSAGE = 'payout line ' || OLD.id
                || ': a new attempt starts from failed', ERRCODE = '23514';
        END IF;
        RETURN NEW;
    END IF;
    IF (OLD.status = 'created' AND NEW.status = 'queued')
       OR (OLD.status = 'queued' AND NEW.status = 'submitted')
       OR (OLD.status = 'submitted' AND NEW.status IN ('pending', 'unknown', 'succeeded', 'failed'))
       OR (OLD.status = 'pending' AND NEW.status IN ('unknown', 'succeeded', 'failed'))
       OR (OLD.status = 'unknown' AND NEW.status IN ('pending', 'succeeded', 'failed'))
       OR (OLD.status = 'failed' AND NEW.status = 'queued'
           AND NEW.attempt = OLD.attempt + 1 AND NEW.reference <> OLD.reference
           AND NEW.pending_id <> OLD.pending_id) THEN
        IF OLD.status <> 'failed' AND (NEW.attempt <> OLD.attempt
           OR NEW.reference <> OLD.reference OR NEW.pending_id <> OLD.pending_id) THEN
            RAISE EXCEPTION USING MESSAGE = 'payout line ' || OLD.id
                || ': only a failed line starts a new attempt', ERRCODE = '23514';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING MESSAGE = 'payout line ' || OLD.id || ' cannot move from '
        || OLD.status || ' to ' || NEW.status, ERRCODE = '23514';
END;
$$;

CREATE TRIGGER payout_lines_forward_only
    BEFORE UPDATE ON payout_lines
    FOR EACH ROW EXECUTE FUNCTION payout_lines_forward_only();

CREATE OR REPLACE FUNCTION payout_lines_no_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payout lines are never deleted' USING ERRCODE = '23514';
END;
$$;

CREATE TRIGGER payout_lines_no_delete
    BEFORE DELETE ON payout_lines
    FOR EACH ROW EXECUTE FUNCTION payout_lines_no_delete();
