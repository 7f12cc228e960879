-- updated_at follows every real change, whichever code path (ORM, bulk upsert, psql) made it.
CREATE OR REPLACE FUNCTION sika_farmers_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    NEW.created_at := OLD.created_at;
    RETURN NEW;
END;
$$;

CREATE TRIGGER farmers_touch
    BEFORE UPDATE ON farmers
    FOR EACH ROW EXECUTE FUNCTION sika_farmers_touch();
