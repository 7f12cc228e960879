-- Batches can be cancelled before dispatch, and the signed requests that decided a
-- batch's fate are kept with it (revision 0016).
--
-- A cancelled batch's lines, never sent, move from created to failed with the reason
-- 'cancelled' (not retryable), which frees each payee's place in the scope for a later
-- batch; only a line whose batch is cancelled may take that step. The rest of the line
-- rule is payouts_line_check.sql's, unchanged.
--
-- A batch's own life only moves forward, and what its signatures name never changes:
--   created  -> approved | cancelled
--   approved -> dispatched | cancelled
--   dispatched -> completed, completed -> dispatched (a retry's new attempts)
-- The manifest is written once, right after the lines (it is '' until then), and the
-- approver once.
-- No percent signs: run_sql_file passes the text through the driver's parser.
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
    IF NEW.line_mac IS DISTINCT FROM OLD.line_mac
       AND NOT (OLD.line_mac IS NULL AND OLD.status = 'created') THEN
        RAISE EXCEPTION USING MESSAGE = 'payout line ' || OLD.id
            || ': its MAC is immutable', ERRCODE = '23514';
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
       OR (OLD.status = 'created' AND NEW.status = 'failed' AND NEW.reason = 'cancelled'
           AND NOT NEW.retryable
           AND EXISTS (SELECT 1 FROM payout_batches b
                       WHERE b.id = NEW.batch_id AND b.status = 'cancelled'))
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


CREATE FUNCTION payout_batches_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.programme IS DISTINCT FROM OLD.programme
       OR NEW.scope IS DISTINCT FROM OLD.scope
       OR NEW.debit_account IS DISTINCT FROM OLD.debit_account
       OR NEW.nonce IS DISTINCT FROM OLD.nonce
       OR NEW.lines IS DISTINCT FROM OLD.lines
       OR NEW.total IS DISTINCT FROM OLD.total
       OR NEW.maker_id IS DISTINCT FROM OLD.maker_id
       OR (NEW.manifest IS DISTINCT FROM OLD.manifest AND OLD.manifest <> '')
       OR (NEW.approver_id IS DISTINCT FROM OLD.approver_id AND OLD.approver_id IS NOT NULL)
    THEN
        RAISE EXCEPTION USING MESSAGE = 'payout batch ' || OLD.id
            || ': what its maker and approver signed is immutable', ERRCODE = '23514';
    END IF;
    IF NEW.status = OLD.status
       OR (OLD.status = 'created' AND NEW.status IN ('approved', 'cancelled'))
       OR (OLD.status = 'approved' AND NEW.status IN ('dispatched', 'cancelled'))
       OR (OLD.status = 'dispatched' AND NEW.status = 'completed')
       OR (OLD.status = 'completed' AND NEW.status = 'dispatched') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING MESSAGE = 'payout batch ' || OLD.id || ' cannot move from '
        || OLD.status || ' to ' || NEW.status, ERRCODE = '23514';
END;
$$;

CREATE TRIGGER payout_batches_forward_only
    BEFORE UPDATE ON payout_batches
    FOR EACH ROW EXECUTE FUNCTION payout_batches_forward_only();

-- The signed requests are evidence: appended, never changed (sika_identity_history_only
-- comes from agents_identity.sql).
CREATE TRIGGER payout_batch_requests_no_update
    BEFORE UPDATE OR DELETE ON payout_batch_requests
    FOR EACH ROW EXECUTE FUNCTION sika_identity_history_only();
CREATE TRIGGER payout_batch_requests_no_truncate
    BEFORE TRUNCATE ON payout_batch_requests
    FOR EACH STATEMENT EXECUTE FUNCTION sika_identity_history_only();
