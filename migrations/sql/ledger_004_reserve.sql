-- A payout batch reserved in one statement (the float is a hot account:
-- docs/architecture.md#ledger), and a transfer-id CHECK that costs what an INSERT can
-- afford.

-- The same rule as ledger_001's CHECK: 1 to 200 characters, the first a letter or digit.
-- Spelled with a bounded repeat ({0,199}) PostgreSQL's regex engine spent about 12
-- microseconds a row on it, more than the rest of a million-row INSERT; every character
-- allowed is one byte, so a star and length() say the same for about half a microsecond.
ALTER TABLE ledger_transfers
    DROP CONSTRAINT ck_ledger_transfers_id_format,
    ADD CONSTRAINT ck_ledger_transfers_id_format
        CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$' AND length(id) <= 200);


-- Reserve pending transfers of p_amounts[i] from p_debit to p_credit under p_ids[i]:
-- ledger_submit with every item a pending transfer between the same two accounts, and the
-- same answers. Such a batch takes every account's headroom in one direction only, so
-- items judged in order all go in exactly when the whole batch fits, which the limit
-- CHECKs on the two account rows judge once the statement trigger has applied the sum.
-- That makes one INSERT straight from the two arrays exact: the account codes are looked
-- up once instead of per row, and nothing else travels or is unnested a million times.
-- Anything unusual (an id that exists or is malformed, a missing account, a breached
-- limit, a bad amount, timeout or code) undoes the attempt, and ledger_submit judges the
-- batch item by item.
CREATE FUNCTION ledger_reserve(
    p_ids text[], p_debit text, p_credit text, p_amounts bigint[],
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
       AND cardinality(p_amounts) = n AND p_timeout IS NOT NULL AND p_code IS NOT NULL
       AND NOT ledger_reserve_would_breach(debit_id, credit_id, p_amounts)
    THEN
        BEGIN
            INSERT INTO ledger_transfers
                (id, debit_account_id, credit_account_id, amount, kind, timeout, expires_at,
                 code)
            SELECT u.id, debit_id, credit_id, u.amount, 'pending', p_timeout,
                   CASE WHEN p_timeout > 0 THEN now() + make_interval(secs => p_timeout) END,
                   p_code
            FROM unnest(p_ids, p_amounts) AS u(id, amount);
            GET DIAGNOSTICS inserted = ROW_COUNT;
            IF inserted = n THEN
                RETURN;
            END IF;
            RAISE EXCEPTION 'not every item fits the reserve path' USING ERRCODE = 'SK001';
        EXCEPTION
            WHEN check_violation OR not_null_violation OR unique_violation
                 OR SQLSTATE 'SK001' THEN
                NULL;  -- nothing of the attempt remains; ledger_submit judges item by item
        END;
    END IF;

    -- Columns left at their defaults travel as NULL, as ledger.api.create_transfers sends them.
    RETURN QUERY
    SELECT s.item, s.outcome
    FROM ledger_submit(
        p_ids, array_fill(p_debit, ARRAY[n]), array_fill(p_credit, ARRAY[n]), p_amounts,
        array_fill('pending'::text, ARRAY[n]), NULL,
        CASE WHEN p_timeout IS DISTINCT FROM 0 THEN array_fill(p_timeout, ARRAY[n]) END,
        CASE WHEN p_code IS DISTINCT FROM 0 THEN array_fill(p_code, ARRAY[n]) END,
        NULL
    ) AS s;
END;
$$;


-- Whether reserving p_amounts from debit_id to credit_id would take a limited account
-- past its limit, as the accounts stand now. Only a shortcut: the limit CHECKs decide
-- under the row locks the statement trigger takes, and a batch that would breach goes
-- straight to ledger_submit instead of inserting a million rows to be rolled back.
CREATE FUNCTION ledger_reserve_would_breach(debit_id bigint, credit_id bigint, amounts bigint[])
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(bool_or(
               CASE
                   WHEN a.id = debit_id AND a.limit_on = 'debits'
                       THEN a.debits_pending + a.debits_posted + t.total > a.credits_posted
                   WHEN a.id = credit_id AND a.limit_on = 'credits'
                       THEN a.credits_pending + a.credits_posted + t.total > a.debits_posted
                   ELSE false
               END), false)
    FROM ledger_accounts a,
         (SELECT sum(u.amount) AS total FROM unnest(amounts) AS u(amount)) t
    WHERE a.id IN (debit_id, credit_id);
$$;


-- ledger_002's statement trigger, with a shortcut for statements that resolve no pending
-- transfer. Its general path joined every new row to the transfers twice and went over
-- the rows four times; a reserved batch of a million rows now costs two passes. The
-- general path below is ledger_002's, unchanged.
CREATE OR REPLACE FUNCTION ledger_apply_transfers() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
    resolves boolean;
    mistimed boolean;
    debit_ids bigint[];
    credit_ids bigint[];
    kinds text[];
    amounts numeric[];
BEGIN
    -- Most statements create only single and pending transfers (a reserved batch, a
    -- payment): the counters then move by sums over one pass of the rows, grouped by
    -- account pair, with no transfer to look up. A statement that resolves pending
    -- transfers (its first row tells, short of a rare mix) takes the general path below.
    IF (SELECT n.pending_id FROM new_rows n LIMIT 1) IS NULL THEN
        SELECT bool_or(g.resolves), bool_or(g.mistimed), array_agg(g.debit_account_id),
               array_agg(g.credit_account_id), array_agg(g.kind), array_agg(g.amount)
        INTO resolves, mistimed, debit_ids, credit_ids, kinds, amounts
        FROM (
            SELECT n.debit_account_id, n.credit_account_id, n.kind, sum(n.amount) AS amount,
                   bool_or(n.created_at <> now()) AS mistimed,
                   bool_or(n.pending_id IS NOT NULL) AS resolves
            FROM new_rows n
            GROUP BY n.debit_account_id, n.credit_account_id, n.kind
        ) g;
    END IF;
    IF resolves IS false THEN
        IF mistimed THEN
            SELECT n.id INTO bad FROM new_rows n WHERE n.created_at <> now() LIMIT 1;
            RAISE EXCEPTION USING MESSAGE = 'transfer ' || bad.id
                || ': created_at must be the transaction time', ERRCODE = '23514';
        END IF;

        PERFORM 1 FROM ledger_accounts
        WHERE id = ANY (debit_ids) OR id = ANY (credit_ids)
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
                SELECT u.debit_id AS account_id,
                       CASE u.kind WHEN 'pending' THEN u.amount ELSE 0 END AS debits_pending,
                       CASE u.kind WHEN 'single' THEN u.amount ELSE 0 END AS debits_posted,
                       0 AS credits_pending, 0 AS credits_posted
                FROM unnest(debit_ids, credit_ids, kinds, amounts)
                     AS u(debit_id, credit_id, kind, amount)
                UNION ALL
                SELECT u.credit_id, 0, 0,
                       CASE u.kind WHEN 'pending' THEN u.amount ELSE 0 END,
                       CASE u.kind WHEN 'single' THEN u.amount ELSE 0 END
                FROM unnest(debit_ids, credit_ids, kinds, amounts)
                     AS u(debit_id, credit_id, kind, amount)
            ) e
            GROUP BY e.account_id
        ) d
        WHERE a.id = d.account_id;
        RETURN NULL;
    END IF;

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
