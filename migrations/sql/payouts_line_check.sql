-- Payout lines carry `line_mac`, the HMAC of their fields that a worker recomputes before
-- it sends (payouts.batches.line_mac). Like the fields it covers, it never changes once
-- written; the one exception is a line written before it existed (NULL) that is still
-- `created`: dispatch seals such lines, once, after checking the batch's manifest.
-- The rest is payouts_line_transitions.sql's rule, unchanged.
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
