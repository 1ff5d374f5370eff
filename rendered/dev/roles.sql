-- roles.sql rendered by pgvector-stack for database app: do not edit, change the stack config.
-- Run as the superuser on the Unix socket at every start and whenever it changes; idempotent. No password here:
-- the SCRAM verifiers are set separately, from the stack's secrets.

-- Quiet on a run that changes nothing: no NOTICE for what exists already (this session and the next).
SET client_min_messages = warning;

-- app_owner: owns the database and its tables: migrations, the post-deploy hook's DDL and index builds; straight to PostgreSQL only
SELECT format('CREATE ROLE %I', 'app_owner') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_owner') \gexec
-- CONNECTION LIMIT 10: the hook's session and index builds, a migration tool: not a serving role
ALTER ROLE "app_owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 10;
-- statement_timeout 5min: the guide's statement timeout; the hook lifts it for its index builds in their own session
ALTER ROLE "app_owner" SET statement_timeout = '5min';

-- app: the application: SELECT, INSERT, UPDATE, DELETE on the owner's tables, no DDL
SELECT format('CREATE ROLE %I', 'app') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') \gexec
-- CONNECTION LIMIT 185: max_connections 200 less the 10 maintenance and 5 monitoring slots: the room PgBouncer may fill, and no more
ALTER ROLE "app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 185;
-- statement_timeout 5min: guide: statement timeout 5 minutes for vector operations
ALTER ROLE "app" SET statement_timeout = '5min';

-- app_readonly: read-only access (reporting, analytics): SELECT on the owner's tables
SELECT format('CREATE ROLE %I', 'app_readonly') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_readonly') \gexec
-- CONNECTION LIMIT 92: half the server's room: reads cannot starve the application's writes
ALTER ROLE "app_readonly" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 92;
-- statement_timeout 5min: guide: statement timeout 5 minutes for vector operations
ALTER ROLE "app_readonly" SET statement_timeout = '5min';

-- pgstack_canary: the canary: its own schema and table, nothing of the application's
SELECT format('CREATE ROLE %I', 'pgstack_canary') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgstack_canary') \gexec
-- CONNECTION LIMIT 5: one scenario connection, one login probe each to PgBouncer and PostgreSQL, room for a reconnect
ALTER ROLE "pgstack_canary" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5;
-- statement_timeout 10s: the canary's own query timeout: a hung scenario never holds a server connection longer
ALTER ROLE "pgstack_canary" SET statement_timeout = '10s';

-- pgstack_monitor: postgres_exporter: pg_monitor and CONNECT, nothing else
SELECT format('CREATE ROLE %I', 'pgstack_monitor') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgstack_monitor') \gexec
-- CONNECTION LIMIT 5: one exporter connection and its retries
ALTER ROLE "pgstack_monitor" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5;
-- statement_timeout: none on the role: postgres_exporter reads pg_settings in its session, where a role setting would show as drift from postgresql.conf (the exporter's own timeouts bound its queries)
ALTER ROLE "pgstack_monitor" RESET statement_timeout;

-- postgres_exporter reads the statistics views; reserved_connections keeps slots for it when the pool is full.
GRANT pg_monitor TO "pgstack_monitor";
GRANT pg_use_reserved_connections TO "pgstack_monitor";

-- The database, owned by app_owner (an earlier owner is replaced: ownership is the stack's to say).
SELECT format('CREATE DATABASE %I OWNER %I', 'app', 'app_owner') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app') \gexec
ALTER DATABASE "app" OWNER TO "app_owner";
-- Only the stack's roles may connect: PUBLIC's default CONNECT and TEMPORARY are taken away.
REVOKE ALL ON DATABASE "app" FROM PUBLIC;
GRANT CONNECT ON DATABASE "app" TO "app", "app_readonly", "pgstack_canary", "pgstack_monitor";
\connect "app"
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS vector;
-- public belongs to the owner: nobody else creates objects in it (PUBLIC's CREATE is revoked since PostgreSQL 15; said again).
ALTER SCHEMA public OWNER TO "app_owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- pgstack_monitor is who drift --live logs in as: it reads what the configuration files say (a change waiting for a
-- reload or restart), which PostgreSQL shows superusers only unless granted; the files hold no secret.
GRANT SELECT ON pg_catalog.pg_file_settings TO "pgstack_monitor";
GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_all_file_settings() TO "pgstack_monitor";
-- app: DML on the owner's tables, present and future; sequences for serial and identity columns.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "app";
ALTER DEFAULT PRIVILEGES FOR ROLE "app_owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "app";
ALTER DEFAULT PRIVILEGES FOR ROLE "app_owner" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "app";
-- app_readonly: SELECT on the owner's tables, present and future.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO "app_readonly";
ALTER DEFAULT PRIVILEGES FOR ROLE "app_owner" IN SCHEMA public GRANT SELECT ON TABLES TO "app_readonly";
-- pgstack_canary: a schema of its own, first on its search_path (public after it for pgvector's types).
CREATE SCHEMA IF NOT EXISTS "pgstack_canary" AUTHORIZATION "pgstack_canary";
ALTER ROLE "pgstack_canary" IN DATABASE "app" SET search_path = pgstack_canary, public;
