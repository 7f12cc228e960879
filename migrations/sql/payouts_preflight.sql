-- Pre-flight account checks (revision 0018): each line carries the verdict of a look-up
-- of its wallet, and lines whose verdict would fail at the operator are kept out of the
-- manifest (`held_out`, the verdict that put them out).
--
-- What may change, and when:
--   * `preflight`, `preflight_score`, `held_out`, `included_by` and `include_reason` change
--     only while the line is `created` in a `created` batch (before approval): a re-run of
--     the pre-flight, or the maker including a held name_mismatch line.
--   * An excluded line (`created` -> `failed` with reason = held_out, never retryable) only
--     leaves `created` so in a `created` batch; it is then final: never queued, never
--     retried, its pre-flight columns never change again.
--   * A line still held out is never queued.
-- A batch's manifest, lines and total may be written again while it is `created` (the
-- maker signs each new manifest); from approval on, what was signed is immutable. The rest
-- of both rules is payouts_batch_requests.sql's, unchanged.
-- No percent signs: run_sql_file passes the text through the driver's parser.
CREATE OR REPLACE FUNCTION payout_lines_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    batch_created boolean;
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
    IF NEW.preflight IS DISTINCT FROM OLD.preflight
       OR NEW.preflight_score IS DISTINCT FROM OLD.preflight_score
       OR NEW.held_out IS DISTINCT FROM OLD.held_out
       OR NEW.included_by IS DISTINCT FROM OLD.included_by
       OR NEW.include_reason IS DISTINCT FROM OLD.include_reason THEN
        SELECT b.status = 'created' INTO batch_created
          FROM payout_batches b WHERE b.id = NEW.batch_id;
        IF OLD.status <> 'created' OR NOT coalesce(batch_created, false) THEN
            RAISE EXCEPTION USING MESSAGE = 'payout line ' || OLD.id
                || ': its pre-flight changes only before its batch is approved',
                ERRCODE = '23514';
        END IF;
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
    IF (OLD.status = 'created' AND NEW.status = 'queued' AND NEW.held_out IS NULL)
       OR (OLD.status = 'created' AND NEW.status = 'failed' AND NEW.reason = 'cancelled'
           AND NOT NEW.retryable
           AND EXISTS (SELECT 1 FROM payout_batches b
                       WHERE b.id = NEW.batch_id AND b.status = 'cancelled'))
       OR (OLD.status = 'created' AND NEW.status = 'failed' AND NEW.held_out IS NOT NULL
           AND NEW.reason = NEW.held_out AND NOT NEW.retryable
           AND EXISTS (SELECT 1 FROM payout_batches b
                       WHERE b.id = NEW.batch_id AND b.status = 'created'))
       OR (OLD.status = 'queued' AND NEW.status = 'submitted')
       OR (OLD.status = 'submitted' AND NEW.status IN ('pending', 'unknown', 'succeeded', 'failed'))
       OR (OLD.status = 'pending' AND NEW.status IN ('unknown', 'succeeded', 'failed'))
       OR (OLD.status = 'unknown' AND NEW.status IN ('pending', 'succeeded', 'failed'))
       OR (OLD.status = 'failed' AND NEW.status = 'queued' AND OLD.held_out IS NULL
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


CREATE OR REPLACE FUNCTION payout_batches_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.programme IS DISTINCT FROM OLD.programme
       OR NEW.scope IS DISTINCT FROM OLD.scope
       OR NEW.debit_account IS DISTINCT FROM OLD.debit_account
       OR NEW.nonce IS DISTINCT FROM OLD.nonce
       OR NEW.maker_id IS DISTINCT FROM OLD.maker_id
       OR (NEW.approver_id IS DISTINCT FROM OLD.approver_id AND OLD.approver_id IS NOT NULL)
       OR ((NEW.lines IS DISTINCT FROM OLD.lines
            OR NEW.total IS DISTINCT FROM OLD.total
            OR (NEW.manifest IS DISTINCT FROM OLD.manifest AND OLD.manifest <> ''))
           AND NOT (OLD.status = 'created' AND NEW.status = 'created'))
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
