-- 0003: analytics, in its own schema `analytics`: the price table, narrow fact tables that
-- the rollups are recomputed from, the rollup tables and the rollup watermark.
-- The seed's tables in `public` stay exactly as the seed wrote them (no index, no trigger):
-- the facts below are keyed and indexed by time bucket so that an incremental rollup can
-- find every row of a touched bucket without an index on the seed's created_at.
CREATE SCHEMA analytics;

-- Effective-dated prices, in USD per 1M tokens (exact numerics, never float). Loaded from
-- analytics/data/prices.json and the user's override file by `agentstream rollup`.
-- `model` is an exact model name, or a glob pattern (fnmatch: * ? [seq]) when is_pattern.
-- In force for effective_from <= t < effective_to (NULL effective_to: still in force).
CREATE TABLE analytics.prices (
    provider              text          NOT NULL,
    model                 text          NOT NULL,
    is_pattern            boolean       NOT NULL,
    effective_from        timestamptz   NOT NULL,
    effective_to          timestamptz,
    input_per_mtok        numeric(18,6) NOT NULL CHECK (input_per_mtok >= 0),
    output_per_mtok       numeric(18,6) NOT NULL CHECK (output_per_mtok >= 0),
    cached_input_per_mtok numeric(18,6) CHECK (cached_input_per_mtok >= 0),
    checked               date          NOT NULL,
    source                text          NOT NULL,
    PRIMARY KEY (model, is_pattern, effective_from),
    CHECK (effective_to IS NULL OR effective_to > effective_from)
);

-- The price table resolved per model name seen in the data: non-overlapping periods, each
-- naming the price row that wins there (exact before pattern, then the longest pattern).
-- A model listed in resolved_models with no period covering a time is unpriced then.
CREATE TABLE analytics.resolved_models (
    model text PRIMARY KEY
);
CREATE TABLE analytics.price_periods (
    model           text          NOT NULL REFERENCES analytics.resolved_models ON DELETE CASCADE,
    valid_from      timestamptz   NOT NULL,
    valid_to        timestamptz,
    price_model     text          NOT NULL,
    price_is_pattern boolean      NOT NULL,
    input_per_mtok  numeric(18,6) NOT NULL,
    output_per_mtok numeric(18,6) NOT NULL,
    PRIMARY KEY (model, valid_from)
);

-- One narrow row per llm_interactions row: what the rollups group and aggregate.
-- cost is NULL when the model had no price at created_at (unpriced, never $0).
CREATE TABLE analytics.llm_facts (
    id              uuid           PRIMARY KEY,
    created_at      timestamptz    NOT NULL,
    hour            timestamptz    NOT NULL,
    model           text           NOT NULL,
    agent_id        uuid,
    agent_type      text,
    user_id         text,
    session_id      uuid           NOT NULL,
    prompt_tokens   integer        NOT NULL,
    response_tokens integer        NOT NULL,
    latency_ms      integer        NOT NULL,
    success         boolean        NOT NULL,
    cost            numeric(24,12)
);
CREATE INDEX llm_facts_hour ON analytics.llm_facts (hour);

-- One narrow row per agent_executions row. duration_ms is NULL until completed_at is set.
CREATE TABLE analytics.exec_facts (
    id          uuid             PRIMARY KEY,
    started_at  timestamptz      NOT NULL,
    hour        timestamptz      NOT NULL,
    agent_id    uuid             NOT NULL,
    agent_type  text,
    user_id     text,
    session_id  uuid             NOT NULL,
    status      text             NOT NULL,
    duration_ms double precision
);
CREATE INDEX exec_facts_hour ON analytics.exec_facts (hour);

-- Rollups: one row per (granularity, dimension, bucket, key). dimension 'all' has key ''.
-- Percentiles are linear interpolation between closest ranks (percentile_cont, numpy's
-- default), over every call of the group, failed ones included.
CREATE TABLE analytics.llm_rollup (
    granularity     text             NOT NULL CHECK (granularity IN ('hour', 'day')),
    dimension       text             NOT NULL,
    bucket          timestamptz      NOT NULL,
    key             text             NOT NULL,
    calls           bigint           NOT NULL,
    errors          bigint           NOT NULL,
    error_rate      double precision NOT NULL,
    prompt_tokens   bigint           NOT NULL,
    response_tokens bigint           NOT NULL,
    cost            numeric(30,12)   NOT NULL,
    unpriced_calls  bigint           NOT NULL,
    latency_mean    double precision NOT NULL,
    latency_p50     double precision NOT NULL,
    latency_p90     double precision NOT NULL,
    latency_p95     double precision NOT NULL,
    latency_p99     double precision NOT NULL,
    latency_max     integer          NOT NULL,
    PRIMARY KEY (granularity, dimension, bucket, key)
);

-- Agent executions by the bucket of started_at. success_rate = completed / finished
-- (finished = completed, failed or cancelled; NULL when none finished). Durations are over
-- executions with completed_at; their statistics are NULL when there is none.
CREATE TABLE analytics.exec_rollup (
    granularity     text             NOT NULL CHECK (granularity IN ('hour', 'day')),
    dimension       text             NOT NULL,
    bucket          timestamptz      NOT NULL,
    key             text             NOT NULL,
    executions      bigint           NOT NULL,
    finished        bigint           NOT NULL,
    succeeded       bigint           NOT NULL,
    failed          bigint           NOT NULL,
    success_rate    double precision,
    duration_mean   double precision,
    duration_p50    double precision,
    duration_p90    double precision,
    duration_p95    double precision,
    duration_p99    double precision,
    duration_max    double precision,
    PRIMARY KEY (granularity, dimension, bucket, key)
);

-- The rollup's watermark: the last agentstream.change_log seq folded into the facts, and
-- a fingerprint of the prices the facts were costed with (a change forces a re-cost).
CREATE TABLE analytics.rollup_state (
    singleton          boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark          bigint      NOT NULL DEFAULT 0,
    prices_fingerprint text        NOT NULL DEFAULT '',
    updated_at         timestamptz,
    full_rebuild_at    timestamptz
);
INSERT INTO analytics.rollup_state DEFAULT VALUES;
