-- Sika's two database roles on a PostgreSQL that Sika does not run itself (a managed
-- service, a shared server). See docs/database.md.
--
--   sika_owner  owns the schema; `sika db upgrade` connects as it (SIKA_DATABASE_OWNER_URL)
--   sika_app    what every other Sika process connects as (SIKA_DATABASE_URL)
--
-- Run it once with psql, as an administrator that may create roles and databases:
--
--   psql "postgresql://ADMIN@HOST/postgres" -v dbname=sika \
--        -v owner_password="$SIKA_OWNER_PASSWORD" -v app_password="$SIKA_APP_PASSWORD" \
--        -f scripts/create-roles.sql
--
-- It is idempotent: run again, it changes nothing but the two passwords. It creates the
-- database (owned by sika_owner) when it does not exist; an existing one changes owner.

\set ON_ERROR_STOP on

\if :{?dbname}
\else
    \echo 'usage: psql ... -v dbname=NAME -v owner_password=... -v app_password=... -f scripts/create-roles.sql'
    \quit
\endif
\if :{?owner_password}
\else
    \echo 'owner_password is missing (-v owner_password=...)'
    \quit
\endif
\if :{?app_password}
\else
    \echo 'app_password is missing (-v app_password=...)'
    \quit
\endif

-- The roles. Neither is a superuser, creates roles or databases, or bypasses row security
-- (the defaults of CREATE ROLE); sika_app must never be a member of sika_owner.
SELECT 'CREATE ROLE sika_owner LOGIN'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sika_owner') \gexec
SELECT 'CREATE ROLE sika_app LOGIN NOINHERIT'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sika_app') \gexec
ALTER ROLE sika_owner LOGIN PASSWORD :'owner_password';
ALTER ROLE sika_app LOGIN PASSWORD :'app_password';

-- A managed service's administrator is rarely a superuser: to hand the database to
-- sika_owner it must be able to act as sika_owner.
SELECT rolsuper AS admin_is_superuser FROM pg_roles WHERE rolname = current_user \gset
\if :admin_is_superuser
\else
    GRANT sika_owner TO CURRENT_USER;
\endif

-- The database belongs to sika_owner, which (PostgreSQL 15 and later) makes it the owner
-- of the schema public too: the migrations create Sika's tables there.
SELECT format('CREATE DATABASE %I OWNER sika_owner', :'dbname')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'dbname') \gexec
ALTER DATABASE :"dbname" OWNER TO sika_owner;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO sika_owner, sika_app;

\connect :"dbname"

-- Only sika_owner creates objects in the schema. Older servers (before PostgreSQL 15) let
-- every role create in public: a role that may create functions there could shadow one
-- the ledger calls. The migration 0013_app_role refuses to run while sika_app could.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO sika_owner;
GRANT USAGE ON SCHEMA public TO sika_app;

\echo 'roles sika_owner and sika_app are ready; next: sika db upgrade with SIKA_DATABASE_OWNER_URL'
