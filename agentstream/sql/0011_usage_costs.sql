-- 0011: costs as providers bill them (issue 14): cache reads and writes, reasoning tokens,
-- long-prompt tiers, service tiers, time to first token.
-- * analytics.prices keeps the new rates of a row (cache_write, reasoning), its long-prompt
--   tiers (as the price file writes them) and its service tier; a row is keyed by its tier
--   too. analytics.price_periods gains a band per tier: a call whose prompt_tokens is in
--   (above_prompt_tokens, up_to_prompt_tokens] is priced whole at that band's rates.
--   Periods are resolved per (model, service tier) as calls report them; tier_fallback
--   marks periods where a tier with no price row of its own is priced at the default's.
-- * analytics.llm_facts copies the details (agentstream.llm_usage, 0010) and keeps the cost
--   split: cost_pico stays the total; input cost = total - cached - cache write - output.
--   price_flags: 1 = priced at the default tier's row, 2 = cache tokens without a cache
--   price (priced at the input rate). NULL: nothing to flag.
-- * analytics.llm_rollup carries the split, the cache hit ratio and TTFT percentiles.
-- The derived tables are emptied and the fingerprint cleared: the next `agentstream rollup`
-- is a full rebuild, which resolves and costs everything again with the details.
ALTER TABLE analytics.prices
    ADD COLUMN service_tier text NOT NULL DEFAULT 'default',
    ADD COLUMN cache_write_per_mtok numeric(18,6) CHECK (cache_write_per_mtok >= 0),
    ADD COLUMN reasoning_per_mtok numeric(18,6) CHECK (reasoning_per_mtok >= 0),
    ADD COLUMN tiers jsonb NOT NULL DEFAULT '[]';
ALTER TABLE analytics.prices DROP CONSTRAINT prices_pkey;
ALTER TABLE analytics.prices ADD PRIMARY KEY (model, is_pattern, service_tier, effective_from);

DELETE FROM analytics.resolved_models;  -- cascades to price_periods
ALTER TABLE analytics.price_periods DROP CONSTRAINT price_periods_model_fkey;
ALTER TABLE analytics.price_periods DROP CONSTRAINT price_periods_pkey;
ALTER TABLE analytics.resolved_models
    ADD COLUMN service_tier text NOT NULL DEFAULT 'default';
ALTER TABLE analytics.resolved_models DROP CONSTRAINT resolved_models_pkey;
ALTER TABLE analytics.resolved_models ADD PRIMARY KEY (model, service_tier);
ALTER TABLE analytics.price_periods
    ADD COLUMN service_tier text NOT NULL DEFAULT 'default',
    ADD COLUMN above_prompt_tokens integer NOT NULL DEFAULT -1,
    ADD COLUMN up_to_prompt_tokens integer,
    ADD COLUMN cached_input_per_mtok numeric(18,6),
    ADD COLUMN cache_write_per_mtok numeric(18,6),
    ADD COLUMN reasoning_per_mtok numeric(18,6),
    ADD COLUMN tier_fallback boolean NOT NULL DEFAULT false;
ALTER TABLE analytics.price_periods
    ADD PRIMARY KEY (model, service_tier, valid_from, above_prompt_tokens);
ALTER TABLE analytics.price_periods ADD FOREIGN KEY (model, service_tier)
    REFERENCES analytics.resolved_models (model, service_tier) ON DELETE CASCADE;

ALTER TABLE analytics.llm_facts
    ADD COLUMN service_tier text,
    ADD COLUMN cache_read_tokens integer,
    ADD COLUMN cache_write_tokens integer,
    ADD COLUMN reasoning_tokens integer,
    ADD COLUMN ttft_ms integer,
    ADD COLUMN cached_cost_pico bigint,
    ADD COLUMN cache_write_cost_pico bigint,
    ADD COLUMN output_cost_pico bigint,
    ADD COLUMN reasoning_cost_pico bigint,
    ADD COLUMN price_flags smallint;

ALTER TABLE analytics.llm_rollup
    ADD COLUMN cache_read_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_hit_ratio double precision,
    ADD COLUMN input_cost numeric(30,12) NOT NULL DEFAULT 0,
    ADD COLUMN cached_input_cost numeric(30,12) NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_cost numeric(30,12) NOT NULL DEFAULT 0,
    ADD COLUMN output_cost numeric(30,12) NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_cost numeric(30,12) NOT NULL DEFAULT 0,
    ADD COLUMN tier_fallback_calls bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_unpriced_calls bigint NOT NULL DEFAULT 0,
    ADD COLUMN ttft_p50 double precision,
    ADD COLUMN ttft_p95 double precision,
    ADD COLUMN ttft_p99 double precision;
COMMENT ON COLUMN analytics.llm_rollup.cache_hit_ratio IS
    'cache_read_tokens / prompt_tokens; NULL when prompt_tokens is 0';

GRANT SELECT ON agentstream.llm_usage TO agentstream_rollup;
UPDATE analytics.rollup_state SET prices_fingerprint = '';
