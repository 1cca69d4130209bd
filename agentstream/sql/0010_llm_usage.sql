-- 0010: an LLM call's usage details, beside the seed's llm_interactions (which stays as the
-- seed defines it). One row per interaction that reported any detail, keyed by its id,
-- written by the sink in the same transaction as the interaction and only when the
-- interaction itself was inserted (first write wins for both). Counts mean what the
-- OpenTelemetry GenAI conventions mean: cache reads and writes are part of prompt_tokens,
-- reasoning tokens part of response_tokens (docs/design.md). NULL: not reported.
CREATE TABLE agentstream.llm_usage (
    id                     uuid PRIMARY KEY REFERENCES public.llm_interactions (id),
    cache_read_tokens      integer CHECK (cache_read_tokens >= 0),
    cache_write_tokens     integer CHECK (cache_write_tokens >= 0),
    reasoning_tokens       integer CHECK (reasoning_tokens >= 0),
    time_to_first_token_ms integer CHECK (time_to_first_token_ms >= 0),
    provider               varchar(100),
    service_tier           varchar(50),
    finish_reason          varchar(100)
);

GRANT INSERT, SELECT ON agentstream.llm_usage TO agentstream_writer;
GRANT USAGE ON SCHEMA agentstream TO agentstream_analyst;
GRANT SELECT ON agentstream.llm_usage TO agentstream_analyst;
