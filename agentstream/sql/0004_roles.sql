-- 0004: least-privilege roles (NOLOGIN groups: grant them to your login roles).
--   agentstream_writer   the worker: write the seed tables and the pipeline's bookkeeping,
--                        no DELETE or DDL on the seed tables.
--   agentstream_analyst  read-only: the seed tables and the analytics schema.
--   agentstream_rollup   `agentstream rollup`: reads everything, writes only `analytics`.
-- e.g.  CREATE ROLE worker LOGIN PASSWORD '...' IN ROLE agentstream_writer;
-- Roles belong to the cluster, not the database: create them only where missing.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['agentstream_writer', 'agentstream_analyst', 'agentstream_rollup'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a migration of another database
            END;
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public, agentstream TO agentstream_writer;
GRANT SELECT, INSERT, UPDATE ON
    sessions, agents, agent_executions, llm_interactions, events, documents
    TO agentstream_writer;
GRANT SELECT, INSERT, DELETE ON agentstream.inferred_members TO agentstream_writer;
GRANT INSERT ON agentstream.change_log TO agentstream_writer;
GRANT SELECT ON agentstream.schema_migrations TO agentstream_writer;

GRANT USAGE ON SCHEMA public, analytics TO agentstream_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO agentstream_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO agentstream_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO agentstream_analyst;

GRANT agentstream_analyst TO agentstream_rollup;
GRANT USAGE ON SCHEMA agentstream TO agentstream_rollup;
GRANT SELECT ON ALL TABLES IN SCHEMA agentstream TO agentstream_rollup;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA analytics
    TO agentstream_rollup;
ALTER DEFAULT PRIVILEGES IN SCHEMA analytics
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO agentstream_rollup;
