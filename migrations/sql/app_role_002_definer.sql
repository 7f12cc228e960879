-- The ledger's write path runs with its owner's rights (docs/database.md): sika_app may read the
-- ledger but never write its tables, so it calls these functions, which are SECURITY
-- DEFINER and owned by sika_owner. Each has a fixed search_path with pg_temp last, so a
-- caller's temporary table or function cannot stand in for one the ledger uses (pg_temp
-- is never searched for functions or operators, and here not before public for tables).
--
-- The helpers (ledger_fail_broken_chains, ledger_limit_effects,
-- ledger_reserve_would_breach) stay SECURITY INVOKER: only these functions call them,
-- inside their fixed search_path, and sika_app may not execute them (app_role_003).

-- The helper functions read a session temp table that exists only at run time.
SET LOCAL check_function_bodies = off;

-- ledger_003's ledger_submit, unchanged but for its header and the owner check on the
-- session's work table: a SECURITY DEFINER function must not use a temporary table its
-- caller made.
CREATE OR REPLACE FUNCTION ledger_submit(
    p_ids text[], p_debits text[], p_credits text[], p_amounts bigint[], p_kinds text[],
    p_pending_ids text[], p_timeouts integer[], p_codes integer[], p_linked boolean[]
) RETURNS TABLE (item integer, outcome text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
-- Index probes, not hashes of the whole transfers table: a batch looks up its own ids,
-- and the table only grows.
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n integer := cardinality(p_ids);
    breaches bigint;
    e record;
    room jsonb;
    trial jsonb;
    cur_chain integer;
    chain_failed boolean := false;
    remaining bigint;
    inserted bigint;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RETURN;
    END IF;

    -- Fast path: one INSERT straight from the arrays, the same work as a plain INSERT of
    -- those rows. It is exact only when the batch cannot give headroom back to an account
    -- (every item pending), or has one item: then every prefix of the batch fits if the
    -- whole does, which the limit CHECKs judge. Anything unusual (a replayed id, a missing
    -- account, a breached limit, a bad field) undoes the attempt and takes the exact path.
    IF NOT coalesce(p_linked[n], false)
       AND ((n = 1 AND p_kinds[1] IN ('single', 'pending'))
            OR NOT EXISTS (SELECT 1 FROM unnest(p_kinds) k WHERE k IS DISTINCT FROM 'pending'))
    THEN
        BEGIN
            INSERT INTO ledger_transfers
                (id, debit_account_id, credit_account_id, amount, kind, timeout, expires_at,
                 code)
            SELECT u.id, da.id, ca.id, u.amount, u.kind, coalesce(u.timeout, 0),
                   CASE WHEN u.timeout > 0 THEN now() + make_interval(secs => u.timeout) END,
                   coalesce(u.code, 0)
            FROM unnest(p_ids, p_kinds, p_debits, p_credits, p_amounts, p_pending_ids,
                        p_timeouts, p_codes)
                 AS u(id, kind, debit_code, credit_code, amount, pending_id, timeout, code)
            JOIN ledger_accounts da ON da.code = u.debit_code
            JOIN ledger_accounts ca ON ca.code = u.credit_code
            WHERE u.pending_id IS NULL;
            GET DIAGNOSTICS inserted = ROW_COUNT;
            IF inserted = n THEN
                RETURN;
            END IF;
            RAISE EXCEPTION 'not every item fits the fast path' USING ERRCODE = 'SK001';
        EXCEPTION
            WHEN check_violation OR not_null_violation OR unique_violation
                 OR SQLSTATE 'SK001' THEN
                NULL;  -- nothing of the attempt remains; judge item by item below
        END;
    END IF;
    -- A session-private work table, created once per connection and emptied per call.
    IF to_regclass('pg_temp.ledger_batch') IS NULL THEN
        CREATE TEMP TABLE ledger_batch (
            pos integer, id text, kind text, debit_code text, credit_code text,
            amount bigint, pending_id text, timeout integer, code integer, linked boolean,
            chain integer, chain_end integer, debit_id bigint, credit_id bigint,
            given_debit bigint, given_credit bigint, pending_amount bigint, result text
        );
    ELSE
        -- The caller may have made a table of that name first, with a trigger that would
        -- run with this function's rights: only the table this function made is used.
        IF (SELECT pg_get_userbyid(c.relowner) FROM pg_class c
            WHERE c.oid = to_regclass('pg_temp.ledger_batch')) IS DISTINCT FROM current_user
        THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = 'pg_temp.ledger_batch belongs to another role: ledger_submit refused';
        END IF;
        TRUNCATE pg_temp.ledger_batch;
    END IF;

    -- Pendings this batch resolves that have timed out are expired first, so their
    -- reservation is released and a post or void of them answers pending_transfer_expired.
    IF EXISTS (SELECT 1 FROM unnest(p_kinds) k WHERE k IN ('post', 'void')) THEN
        PERFORM ledger_expire(array_remove(p_pending_ids, NULL));
    END IF;

    -- One pass: resolve accounts, the pending transfer, an existing transfer with the same
    -- id, and every rule that does not depend on balances.
    INSERT INTO pg_temp.ledger_batch
    SELECT u.pos, u.id, u.kind, u.debit_code, u.credit_code,
           CASE WHEN u.kind = 'void' OR (u.kind = 'post' AND u.amount IS NULL)
                THEN p.amount ELSE u.amount END,
           u.pending_id, coalesce(u.timeout, 0), coalesce(u.code, 0), coalesce(u.linked, false),
           u.chain, u.chain_end,
           CASE WHEN u.kind IN ('post', 'void') THEN p.debit_account_id ELSE da.id END,
           CASE WHEN u.kind IN ('post', 'void') THEN p.credit_account_id ELSE ca.id END,
           da.id, ca.id, p.amount,
           CASE
             WHEN x.id IS NOT NULL THEN CASE
               WHEN x.kind <> u.kind THEN 'exists_with_different_flags'
               WHEN x.pending_id IS DISTINCT FROM u.pending_id
                 THEN 'exists_with_different_pending_id'
               WHEN x.timeout <> coalesce(u.timeout, 0) THEN 'exists_with_different_timeout'
               WHEN u.debit_code IS NOT NULL AND x.debit_account_id IS DISTINCT FROM da.id
                 THEN 'exists_with_different_debit_account_id'
               WHEN u.credit_code IS NOT NULL AND x.credit_account_id IS DISTINCT FROM ca.id
                 THEN 'exists_with_different_credit_account_id'
               WHEN u.amount IS NOT NULL AND x.amount <> u.amount
                 THEN 'exists_with_different_amount'
               WHEN x.code <> coalesce(u.code, 0) THEN 'exists_with_different_code'
               ELSE 'exists' END
             WHEN u.id IS NULL OR u.id !~ '^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$'
               THEN 'id_must_be_valid'
             WHEN u.kind IS NULL OR u.kind NOT IN ('single', 'pending', 'post', 'void')
               THEN 'flags_are_mutually_exclusive'
             WHEN u.amount IS NOT NULL AND u.amount <= 0 THEN 'amount_must_not_be_zero'
             WHEN u.timeout < 0 OR (u.timeout > 0 AND u.kind <> 'pending')
               THEN 'timeout_reserved_for_pending_transfer'
             WHEN u.code NOT BETWEEN 0 AND 65535 THEN 'code_must_be_valid'
             WHEN u.kind IN ('single', 'pending') AND u.amount IS NULL
               THEN 'amount_must_not_be_zero'
             WHEN u.kind IN ('single', 'pending') AND da.id IS NULL
               THEN 'debit_account_not_found'
             WHEN u.kind IN ('single', 'pending') AND ca.id IS NULL
               THEN 'credit_account_not_found'
             WHEN u.kind IN ('single', 'pending') AND da.id = ca.id
               THEN 'accounts_must_be_different'
             WHEN u.kind IN ('single', 'pending') AND u.pending_id IS NOT NULL
               THEN 'pending_id_must_be_zero'
             WHEN u.kind IN ('single', 'pending') THEN NULL
             WHEN u.pending_id IS NULL THEN 'pending_id_must_not_be_zero'
             WHEN p.id IS NULL THEN 'pending_transfer_not_found'
             WHEN p.kind <> 'pending' THEN 'pending_transfer_not_pending'
             WHEN u.debit_code IS NOT NULL AND p.debit_account_id IS DISTINCT FROM da.id
               THEN 'pending_transfer_has_different_debit_account_id'
             WHEN u.credit_code IS NOT NULL AND p.credit_account_id IS DISTINCT FROM ca.id
               THEN 'pending_transfer_has_different_credit_account_id'
             WHEN r.kind = 'post' THEN 'pending_transfer_already_posted'
             WHEN r.kind = 'void' THEN 'pending_transfer_already_voided'
             WHEN r.kind = 'expire' THEN 'pending_transfer_expired'
             WHEN p.expires_at IS NOT NULL AND p.expires_at <= now()
               THEN 'pending_transfer_expired'
             WHEN u.kind = 'post' AND u.amount > p.amount
               THEN 'exceeds_pending_transfer_amount'
             WHEN u.kind = 'void' AND u.amount IS NOT NULL AND u.amount <> p.amount
               THEN 'pending_transfer_has_different_amount'
             ELSE NULL
           END
    FROM (
        SELECT a.*, a.pos AS chain, a.pos AS chain_end
        FROM unnest(p_ids, p_kinds, p_debits, p_credits, p_amounts, p_pending_ids,
                    p_timeouts, p_codes, p_linked)
             WITH ORDINALITY
             AS a(id, kind, debit_code, credit_code, amount, pending_id, timeout, code,
                  linked, pos)
    ) u
    LEFT JOIN ledger_transfers x ON x.id = u.id
    LEFT JOIN ledger_accounts da ON da.code = u.debit_code
    LEFT JOIN ledger_accounts ca ON ca.code = u.credit_code
    -- NULL keys for single and pending items, so their probes cost nothing
    LEFT JOIN ledger_transfers p
        ON p.id = CASE WHEN u.kind IN ('post', 'void') THEN u.pending_id END
    LEFT JOIN ledger_transfers r ON r.pending_id = p.id;

    -- Two items of one batch with the same id, or resolving the same pending transfer,
    -- are refused by the unique indexes below (an error for the whole batch); the Python
    -- API refuses them earlier with a friendly message.

    -- Chains: only batches that use links pay for finding them.
    IF true = ANY (p_linked) THEN
        CREATE INDEX ledger_batch_pos ON pg_temp.ledger_batch (pos);
        UPDATE pg_temp.ledger_batch b SET chain = c.chain, chain_end = c.chain_end
        FROM (
            SELECT v.pos, min(v.pos) OVER (PARTITION BY v.grp) AS chain,
                   max(v.pos) OVER (PARTITION BY v.grp) AS chain_end
            FROM (
                SELECT w.pos,
                       -- a chain starts wherever the previous item is not linked
                       sum(CASE WHEN w.prev_linked THEN 0 ELSE 1 END)
                           OVER (ORDER BY w.pos) AS grp
                FROM (
                    SELECT l.pos, lag(l.linked) OVER (ORDER BY l.pos) AS prev_linked
                    FROM pg_temp.ledger_batch l
                ) w
            ) v
        ) c
        WHERE b.pos = c.pos AND (c.chain <> c.pos OR c.chain_end <> c.pos);
    END IF;

    -- An open chain (the last item asks to be linked to a next one) fails whole.
    IF p_linked[n] THEN
        UPDATE pg_temp.ledger_batch b SET result = 'linked_event_chain_open'
        WHERE b.chain = (SELECT l.chain FROM pg_temp.ledger_batch l WHERE l.pos = n);
    END IF;
    PERFORM ledger_fail_broken_chains();

    -- Lock every account the batch touches, in id order: two batches sharing accounts
    -- queue instead of deadlocking, and the balances read below cannot move under us.
    PERFORM 1 FROM ledger_accounts
    WHERE id IN (SELECT b.debit_id FROM pg_temp.ledger_batch b WHERE b.result IS NULL
                 UNION SELECT b.credit_id FROM pg_temp.ledger_batch b WHERE b.result IS NULL)
    ORDER BY id FOR NO KEY UPDATE;

    -- Limits: `consumed` is what an item takes from an account's headroom (negative when it
    -- gives some back). Items are judged in order, so a running sum over the batch tells
    -- whether any item would overdraw; usually none does and every item goes in at once.
    SELECT count(*) INTO breaches
    FROM (
        SELECT f.consumed,
               f.room - sum(f.consumed) OVER (PARTITION BY f.account_id ORDER BY f.pos, f.side
                                              ROWS UNBOUNDED PRECEDING) AS left_after
        FROM ledger_limit_effects() f
    ) s
    WHERE s.consumed > 0 AND s.left_after < 0;

    IF breaches > 0 THEN
        -- Slow path, only when some item breaches: judge item by item, chain by chain.
        IF to_regclass('pg_temp.ledger_batch_pos') IS NULL THEN
            CREATE INDEX ledger_batch_pos ON pg_temp.ledger_batch (pos);
        END IF;
        SELECT jsonb_object_agg(f.account_id::text, f.room) INTO room
        FROM (SELECT DISTINCT g.account_id, g.room FROM ledger_limit_effects() g) f;
        FOR e IN SELECT * FROM ledger_limit_effects() ORDER BY chain, pos, side LOOP
            IF cur_chain IS DISTINCT FROM e.chain THEN
                IF cur_chain IS NOT NULL AND NOT chain_failed THEN
                    room := trial;
                END IF;
                cur_chain := e.chain;
                trial := room;
                chain_failed := false;
            END IF;
            CONTINUE WHEN chain_failed;
            remaining := (trial ->> e.account_id::text)::bigint - e.consumed;
            IF e.consumed > 0 AND remaining < 0 THEN
                chain_failed := true;
                UPDATE pg_temp.ledger_batch b SET result = e.reason WHERE b.pos = e.pos;
                UPDATE pg_temp.ledger_batch b SET result = 'linked_event_failed'
                WHERE b.pos BETWEEN e.chain AND e.chain_end AND b.result IS NULL;
            ELSE
                trial := jsonb_set(trial, ARRAY[e.account_id::text], to_jsonb(remaining));
            END IF;
        END LOOP;
    END IF;

    INSERT INTO ledger_transfers
        (id, debit_account_id, credit_account_id, amount, kind, pending_id, timeout,
         expires_at, code)
    SELECT b.id, b.debit_id, b.credit_id, b.amount, b.kind,
           CASE WHEN b.kind IN ('post', 'void') THEN b.pending_id END, b.timeout,
           CASE WHEN b.timeout > 0 THEN now() + make_interval(secs => b.timeout) END, b.code
    FROM pg_temp.ledger_batch b
    WHERE b.result IS NULL
    ORDER BY b.pos;

    RETURN QUERY SELECT b.pos, b.result FROM pg_temp.ledger_batch b
                 WHERE b.result IS NOT NULL ORDER BY b.pos;
    DROP INDEX IF EXISTS pg_temp.ledger_batch_pos;
END;
$$;


ALTER FUNCTION ledger_move(text[], text, text, bigint[], text, integer, integer)
    SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION ledger_reserve(text[], text, text, bigint[], integer, integer)
    SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION ledger_expire(text[])
    SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;

-- The statement trigger that moves the counters runs as whoever inserts transfers: the
-- owner inside the functions above, or a superuser in psql. A fixed search_path spares
-- the latter a temporary table named like a ledger table.
ALTER FUNCTION ledger_apply_transfers() SET search_path = pg_catalog, public, pg_temp;


-- ledger_002's guard trusted any UPDATE of the counters made from a trigger (depth 2 or
-- more), and any role allowed to UPDATE ledger_accounts could fire one of its own: a
-- trigger on a TEMP table whose pg_temp function moves the counters. Now the counters
-- also demand that the role at work is the table's owner (or a member: a superuser), which
-- sika_app never is; the functions above run as the owner. And a limit is part of what
-- an account is, like its code and kind: nobody lifts it by an UPDATE.
CREATE OR REPLACE FUNCTION ledger_accounts_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.code <> OLD.code OR NEW.kind <> OLD.kind
       OR NEW.limit_on IS DISTINCT FROM OLD.limit_on OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger account ' || OLD.code
            || ' cannot be renamed, re-typed or have its limit changed', ERRCODE = '42501';
    END IF;
    IF (NEW.debits_pending, NEW.debits_posted, NEW.credits_pending, NEW.credits_posted)
       IS DISTINCT FROM
       (OLD.debits_pending, OLD.debits_posted, OLD.credits_pending, OLD.credits_posted)
       AND (pg_trigger_depth() < 2
            OR NOT pg_has_role(current_user,
                               (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID),
                               'USAGE')) THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger account ' || OLD.code
            || ' counters change only by applying transfers', ERRCODE = '42501';
    END IF;
    RETURN NEW;
END;
$$;
