-- What sika_app may do, run as sika_owner (app_role_001 switched to it). The principle:
-- the application reads everything, inserts and updates its working tables, never deletes
-- or truncates a row (Sika keeps history; corrections are new rows), and never writes
-- ledger rows or counters except through the SECURITY DEFINER functions (app_role_002).
-- Triggers already refuse what the ledger and the audit log forbid even to their owner;
-- these privileges refuse it to sika_app before any trigger runs, including from a
-- trigger of its own on a TEMP table.

-- Start from nothing, so a re-run or an earlier hand-made GRANT leaves no extra right.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, sika_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, sika_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC, sika_app;

-- The working tables: read, insert, update. No DELETE, TRUNCATE, REFERENCES or TRIGGER
-- anywhere (a trigger on a ledger table would run inside the ledger's functions).
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO sika_app;
-- USAGE is nextval; no UPDATE, which would allow setval.
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO sika_app;

-- The ledger. Transfers: read only; they are written by ledger_submit, ledger_move,
-- ledger_reserve and ledger_expire. Accounts: created with a code, kind and limit, never
-- with counters of the caller's choosing, and never updated (the counters move only when
-- the functions insert transfers). Seals: appended by sealing, never changed.
REVOKE INSERT, UPDATE ON ledger_transfers, ledger_accounts FROM sika_app;
GRANT INSERT (code, kind, limit_on) ON ledger_accounts TO sika_app;
REVOKE UPDATE ON ledger_seals FROM sika_app;

-- Evidence that is only ever appended: the hash-chained audit log, reconciliation breaks,
-- the history of failed payout attempts.
REVOKE UPDATE ON audit_log, recon_breaks, payout_attempts FROM sika_app;

-- The schema's version is the owner's; the view is read.
REVOKE INSERT, UPDATE ON alembic_version, confirmed_collections FROM sika_app;

-- The ledger's entry points. Every other function (helpers, trigger functions) is the
-- owner's alone: triggers fire without EXECUTE, and the helpers run inside the entry
-- points as the owner.
GRANT EXECUTE ON FUNCTION
    ledger_submit(text[], text[], text[], bigint[], text[], text[], integer[], integer[],
                  boolean[]),
    ledger_move(text[], text, text, bigint[], text, integer, integer),
    ledger_reserve(text[], text, text, bigint[], integer, integer),
    ledger_expire(text[])
    TO sika_app;

-- Tables, sequences and functions that later migrations create as sika_owner get the same
-- rights without naming them; a migration adding a table that must be append-only revokes
-- UPDATE from sika_app, as above. Functions are not executable by PUBLIC: a new SECURITY
-- DEFINER function is sika_app's to call, nobody else's. (PUBLIC's EXECUTE is a global
-- default, so it is revoked without IN SCHEMA.)
ALTER DEFAULT PRIVILEGES FOR ROLE sika_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE ON TABLES TO sika_app;
ALTER DEFAULT PRIVILEGES FOR ROLE sika_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO sika_app;
ALTER DEFAULT PRIVILEGES FOR ROLE sika_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE sika_owner IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO sika_app;
