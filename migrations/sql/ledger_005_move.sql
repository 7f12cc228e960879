-- ledger_reserve's one-statement path for every batch of plain transfers between the same
-- two accounts: posted (single) as well as pending. A single transfer, the commonest call,
-- then costs one INSERT instead of ledger_submit's temporary table, whose creation and
-- drop on every call bloat the catalogue under a sustained load of one-at-a-time
-- transfers. The reasoning is ledger_reserve's: every item takes headroom in the same
-- direction, so items judged in order all go in exactly when the whole batch fits.
CREATE FUNCTION ledger_move(
    p_ids text[], p_debit text, p_credit text, p_amounts bigint[], p_kind text,
    p_timeout integer DEFAULT 0, p_code integer DEFAULT 0
) RETURNS TABLE (item integer, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(p_ids);
    debit_id bigint;
    credit_id bigint;
    inserted bigint;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RETURN;
    END IF;
    SELECT a.id INTO debit_id FROM ledger_accounts a WHERE a.code = p_debit;
    SELECT a.id INTO credit_id FROM ledger_accounts a WHERE a.code = p_credit;

    IF debit_id IS NOT NULL AND credit_id IS NOT NULL
       AND p_kind IN ('single', 'pending')
       AND cardinality(p_amounts) = n AND p_timeout IS NOT NULL AND p_code IS NOT NULL
       -- a timeout belongs to pending transfers only: ledger_submit says so
       AND (p_kind = 'pending' OR p_timeout = 0)
       AND NOT ledger_reserve_would_breach(debit_id, credit_id, p_amounts)
    THEN
        BEGIN
            INSERT INTO ledger_transfers
                (id, debit_account_id, credit_account_id, amount, kind, timeout, expires_at,
                 code)
            SELECT u.id, debit_id, credit_id, u.amount, p_kind, p_timeout,
                   CASE WHEN p_timeout > 0 THEN now() + make_interval(secs => p_timeout) END,
                   p_code
            FROM unnest(p_ids, p_amounts) AS u(id, amount);
            GET DIAGNOSTICS inserted = ROW_COUNT;
            IF inserted = n THEN
                RETURN;
            END IF;
            RAISE EXCEPTION 'not every item fits the one-statement path' USING ERRCODE = 'SK001';
        EXCEPTION
            WHEN check_violation OR not_null_violation OR unique_violation
                 OR SQLSTATE 'SK001' THEN
                NULL;  -- nothing of the attempt remains; ledger_submit judges item by item
        END;
    END IF;

    RETURN QUERY
    SELECT s.item, s.outcome
    FROM ledger_submit(
        p_ids, array_fill(p_debit, ARRAY[n]), array_fill(p_credit, ARRAY[n]), p_amounts,
        array_fill(p_kind, ARRAY[n]), NULL,
        CASE WHEN p_timeout IS DISTINCT FROM 0 THEN array_fill(p_timeout, ARRAY[n]) END,
        CASE WHEN p_code IS DISTINCT FROM 0 THEN array_fill(p_code, ARRAY[n]) END,
        NULL
    ) AS s;
END;
$$;

-- A reservation is a move of pending transfers.
CREATE OR REPLACE FUNCTION ledger_reserve(
    p_ids text[], p_debit text, p_credit text, p_amounts bigint[],
    p_timeout integer DEFAULT 0, p_code integer DEFAULT 0
) RETURNS TABLE (item integer, outcome text)
LANGUAGE sql AS $$
    SELECT m.item, m.outcome
    FROM ledger_move(p_ids, p_debit, p_credit, p_amounts, 'pending', p_timeout, p_code) AS m;
$$;
