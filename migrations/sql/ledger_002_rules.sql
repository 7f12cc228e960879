-- The ledger's rules inside PostgreSQL, so no code path, psql session or Python bug can
-- go around them: append-only transfers and seals, counters moved only by transfers,
-- limits as CHECK constraints on the account row, locks taken in account-id order.

CREATE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' refused',
              ERRCODE = '42501',
              HINT = 'corrections are new transfers; rows are never updated or deleted';
END;
$$;

-- Statement-level, so it fires even for the table owner and for zero-row statements,
-- and costs nothing on INSERT.
CREATE TRIGGER ledger_transfers_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_seals_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_seals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_no_delete
    BEFORE DELETE OR TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();


-- Counters belong to the transfers: an UPDATE that changes them is accepted only from
-- inside ledger_apply_transfers (trigger depth 2), never from a client (depth 1).
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.code <> OLD.code OR NEW.kind <> OLD.kind
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger account ' || OLD.code
            || ' cannot be renamed or re-typed', ERRCODE = '42501';
    END IF;
    IF (NEW.debits_pending, NEW.debits_posted, NEW.credits_pending, NEW.credits_posted)
       IS DISTINCT FROM
       (OLD.debits_pending, OLD.debits_posted, OLD.credits_pending, OLD.credits_posted)
       AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger account ' || OLD.code
            || ' counters change only by applying transfers', ERRCODE = '42501';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ledger_accounts_guard
    BEFORE UPDATE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();


-- Applies a statement's new transfers to the account counters: every touched account is
-- locked in id order (so concurrent writers never deadlock) and updated once, however many
-- rows the statement inserted. The limit CHECK constraints then judge the new counters.
CREATE FUNCTION ledger_apply_transfers() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- A row's timestamp is its transaction's start: sealing relies on it (ledger/seals.py).
    SELECT n.id INTO bad FROM new_rows n WHERE n.created_at <> now() LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING MESSAGE = 'transfer ' || bad.id
            || ': created_at must be the transaction time', ERRCODE = '23514';
    END IF;

    SELECT n.id, n.kind INTO bad
    FROM new_rows n JOIN ledger_transfers p ON p.id = n.pending_id
    WHERE p.kind <> 'pending'
       OR n.debit_account_id <> p.debit_account_id
       OR n.credit_account_id <> p.credit_account_id
       OR (n.kind = 'post' AND n.amount > p.amount)
       OR (n.kind IN ('void', 'expire') AND n.amount <> p.amount)
       OR (n.kind IN ('post', 'void') AND p.expires_at IS NOT NULL AND p.expires_at <= now())
       OR (n.kind = 'expire' AND (p.expires_at IS NULL OR p.expires_at > now()))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING MESSAGE = 'transfer ' || bad.id
            || ' does not match the pending transfer it resolves', ERRCODE = '23514';
    END IF;

    PERFORM 1 FROM ledger_accounts
    WHERE id IN (SELECT debit_account_id FROM new_rows
                 UNION SELECT credit_account_id FROM new_rows)
    ORDER BY id FOR NO KEY UPDATE;

    UPDATE ledger_accounts a
    SET debits_pending = a.debits_pending + d.debits_pending,
        debits_posted = a.debits_posted + d.debits_posted,
        credits_pending = a.credits_pending + d.credits_pending,
        credits_posted = a.credits_posted + d.credits_posted
    FROM (
        SELECT e.account_id,
               sum(e.debits_pending)::bigint AS debits_pending,
               sum(e.debits_posted)::bigint AS debits_posted,
               sum(e.credits_pending)::bigint AS credits_pending,
               sum(e.credits_posted)::bigint AS credits_posted
        FROM (
            SELECT n.debit_account_id AS account_id,
                   CASE n.kind WHEN 'pending' THEN n.amount WHEN 'single' THEN 0
                               ELSE -p.amount END AS debits_pending,
                   CASE WHEN n.kind IN ('single', 'post') THEN n.amount ELSE 0 END
                       AS debits_posted,
                   0 AS credits_pending, 0 AS credits_posted
            FROM new_rows n LEFT JOIN ledger_transfers p ON p.id = n.pending_id
            UNION ALL
            SELECT n.credit_account_id, 0, 0,
                   CASE n.kind WHEN 'pending' THEN n.amount WHEN 'single' THEN 0
                               ELSE -p.amount END,
                   CASE WHEN n.kind IN ('single', 'post') THEN n.amount ELSE 0 END
            FROM new_rows n LEFT JOIN ledger_transfers p ON p.id = n.pending_id
        ) e
        GROUP BY e.account_id
    ) d
    WHERE a.id = d.account_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER ledger_transfers_apply
    AFTER INSERT ON ledger_transfers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_transfers();
