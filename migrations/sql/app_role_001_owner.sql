-- Two roles (docs/database.md): sika_owner owns the schema and
-- runs the migrations; sika_app is what every other Sika process connects as. Roles are
-- cluster-wide, so they may exist already (another Sika database on the same server, or
-- scripts/create-roles.sql run by an administrator of a managed PostgreSQL): nothing here
-- fails or changes anything when they do.
--
-- No percent signs in this file: run_sql_file passes the text through the driver's parser,
-- so dynamic statements are spelled with quote_ident and regclass casts, not format().

DO $$
DECLARE
    me record;
BEGIN
    SELECT r.rolsuper, r.rolcreaterole INTO me FROM pg_roles r WHERE r.rolname = current_user;
    IF (to_regrole('sika_owner') IS NULL OR to_regrole('sika_app') IS NULL)
       AND NOT (me.rolsuper OR me.rolcreaterole) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = 'the roles sika_owner and sika_app do not exist and '
                || current_user || ' may not create them',
            HINT = 'an administrator runs scripts/create-roles.sql once (docs/database.md)';
    END IF;
    -- LOGIN without a password: the embedded server and a local test server trust local
    -- connections; anywhere else an administrator sets passwords (scripts/create-roles.sql).
    IF to_regrole('sika_owner') IS NULL THEN
        BEGIN
            CREATE ROLE sika_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
                NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- a concurrent migration of another database created it first
        END;
    END IF;
    IF to_regrole('sika_app') IS NULL THEN
        BEGIN
            CREATE ROLE sika_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
                NOBYPASSRLS NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;

    -- Roles that already existed are checked, not trusted: an application role that could
    -- become the owner, or bypass privileges, would make every wall below decorative.
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'sika_app'
               AND (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole))
       OR pg_has_role('sika_app', 'sika_owner', 'MEMBER') THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = 'sika_app must be an ordinary role: no superuser, bypassrls or createrole,'
                || ' and not a member of sika_owner',
            HINT = 'ALTER ROLE sika_app NOSUPERUSER NOBYPASSRLS NOCREATEROLE;'
                || ' REVOKE sika_owner FROM sika_app';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'sika_owner' AND r.rolsuper) THEN
        -- SECURITY DEFINER functions run as their owner: a superuser owner would turn any
        -- flaw in them into the whole server.
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'sika_owner must not be a superuser';
    END IF;

    -- To hand its objects to sika_owner, a role that is not a superuser must be able to act
    -- as sika_owner (a CREATEROLE administrator may grant itself that).
    IF current_user <> 'sika_owner' AND NOT me.rolsuper
       AND NOT pg_has_role('sika_owner', 'MEMBER') THEN
        GRANT sika_owner TO CURRENT_USER;
    END IF;
END;
$$;


-- Every object of the schema goes to sika_owner, whoever created it (the embedded server's
-- bootstrap superuser, or an earlier single-role deployment). Extension members stay with
-- their extension; sequences owned by a table follow their table.
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass::text AS name, c.relkind
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND c.relowner <> 'sika_owner'::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY c.oid
    LOOP
        EXECUTE 'ALTER ' || CASE obj.relkind WHEN 'v' THEN 'VIEW'
                                             WHEN 'm' THEN 'MATERIALIZED VIEW'
                                             WHEN 'f' THEN 'FOREIGN TABLE'
                                             ELSE 'TABLE' END
            || ' ' || obj.name || ' OWNER TO sika_owner';
    END LOOP;
    FOR obj IN
        SELECT c.oid::regclass::text AS name
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'
          AND c.relowner <> 'sika_owner'::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
    LOOP
        EXECUTE 'ALTER SEQUENCE ' || obj.name || ' OWNER TO sika_owner';
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure::text AS name, p.prokind
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND p.proowner <> 'sika_owner'::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE 'ALTER ' || CASE obj.prokind WHEN 'a' THEN 'AGGREGATE'
                                             WHEN 'p' THEN 'PROCEDURE'
                                             ELSE 'FUNCTION' END
            || ' ' || obj.name || ' OWNER TO sika_owner';
    END LOOP;
    FOR obj IN
        SELECT t.oid::regtype::text AS name, t.typtype
        FROM pg_type t
        WHERE t.typnamespace = 'public'::regnamespace
          AND t.typtype IN ('e', 'd', 'r', 'm')
          AND t.typowner <> 'sika_owner'::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype IN ('e', 'i'))
    LOOP
        EXECUTE 'ALTER ' || CASE obj.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END
            || ' ' || obj.name || ' OWNER TO sika_owner';
    END LOOP;
END;
$$;


-- The schema: sika_owner creates in it (later migrations run as sika_owner), nobody else
-- does. PostgreSQL 15 and later no longer let PUBLIC create in `public`; older servers do,
-- and a role that may create functions there could shadow one the ledger calls.
DO $$
BEGIN
    IF NOT has_schema_privilege('sika_owner', 'public', 'CREATE') THEN
        GRANT USAGE, CREATE ON SCHEMA public TO sika_owner;
    END IF;
    IF has_schema_privilege('sika_app', 'public', 'CREATE') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        REVOKE CREATE ON SCHEMA public FROM sika_app;
    END IF;
    IF NOT has_schema_privilege('sika_app', 'public', 'USAGE') THEN
        GRANT USAGE ON SCHEMA public TO sika_app;
    END IF;
    -- A REVOKE or GRANT by a role without the right only warns: check the outcome.
    IF has_schema_privilege('sika_app', 'public', 'CREATE')
       OR NOT has_schema_privilege('sika_app', 'public', 'USAGE')
       OR NOT has_schema_privilege('sika_owner', 'public', 'CREATE') THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = 'schema public: sika_owner must create in it, sika_app only use it',
            HINT = 'an administrator runs scripts/create-roles.sql (docs/database.md)';
    END IF;
END;
$$;

-- The rest of this migration, and every later one in this transaction, runs as the owner:
-- what they create belongs to sika_owner and takes its default privileges below.
DO $$
BEGIN
    IF current_user <> 'sika_owner' THEN
        SET LOCAL ROLE sika_owner;
    END IF;
END;
$$;
