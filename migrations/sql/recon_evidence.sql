-- Reconciliation evidence is kept: a run and its breaks are never deleted, a break is
-- never edited, and a run is frozen once a rerun of its day supersedes it.
CREATE OR REPLACE FUNCTION recon_breaks_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'reconciliation breaks are evidence: '
        || lower(TG_OP) || ' refused', ERRCODE = '23514';
END;
$$;

CREATE TRIGGER recon_breaks_immutable BEFORE UPDATE OR DELETE ON recon_breaks
    FOR EACH ROW EXECUTE FUNCTION recon_breaks_immutable();

CREATE OR REPLACE FUNCTION recon_runs_keep() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING MESSAGE = 'reconciliation run ' || OLD.id
            || ' is history: delete refused', ERRCODE = '23514';
    END IF;
    IF OLD.superseded_at IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = 'reconciliation run ' || OLD.id
            || ' was superseded: it is history and cannot change', ERRCODE = '23514';
    END IF;
    IF NEW.provider IS DISTINCT FROM OLD.provider OR NEW.day IS DISTINCT FROM OLD.day
       OR NEW.statement_sha256 IS DISTINCT FROM OLD.statement_sha256 THEN
        RAISE EXCEPTION USING MESSAGE = 'reconciliation run ' || OLD.id
            || ': its operator, day and statement are fixed', ERRCODE = '23514';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER recon_runs_keep BEFORE UPDATE OR DELETE ON recon_runs
    FOR EACH ROW EXECUTE FUNCTION recon_runs_keep();
