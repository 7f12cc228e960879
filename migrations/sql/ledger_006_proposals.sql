-- Manual ledger entries wait as proposals for a different approver (revision 0017).
--
-- What the maker signed (the kind, the transfer, the request and its signature) never
-- changes, and a decision is final: proposed -> executed | refused | rejected, once.
-- The four-eyes rule itself is a CHECK on the table (decided_by <> proposed_by).
-- No percent signs: run_sql_file passes the text through the driver's parser.
CREATE OR REPLACE FUNCTION ledger_proposals_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'proposed' THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger proposal ' || OLD.id || ' was '
            || OLD.status || ': a decision is final', ERRCODE = '23514';
    END IF;
    IF (NEW.id, NEW.kind, NEW.transfer_id, NEW.command, NEW.arguments, NEW.agent,
        NEW.request_id, NEW.issued_at, NEW.signature, NEW.proposed_by, NEW.proposed_at)
       IS DISTINCT FROM
       (OLD.id, OLD.kind, OLD.transfer_id, OLD.command, OLD.arguments, OLD.agent,
        OLD.request_id, OLD.issued_at, OLD.signature, OLD.proposed_by, OLD.proposed_at) THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger proposal ' || OLD.id
            || ': what its maker signed never changes', ERRCODE = '23514';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER ledger_proposals_forward_only
    BEFORE UPDATE ON ledger_proposals
    FOR EACH ROW EXECUTE FUNCTION ledger_proposals_forward_only();
