-- 0006: facts read faster, and a full rebuild in two transactions.
-- * llm_facts.cost (numeric dollars) becomes cost_pico: the same exact amount as a bigint of
--   10^-12 USD. Every rollup reads the facts back, and PostgreSQL's numeric arithmetic to
--   turn the numeric into something cheap to read cost half of the read's server time.
--   A call would have to cost $9.2M to overflow it.
-- * rollup_state.buckets_stale: a full rebuild commits the facts first, then rebuilds every
--   rollup bucket from them in a second transaction (read back through ADBC, several times
--   faster than inside the first). A run that dies in between leaves this true, and the
--   next run rebuilds every bucket.
ALTER TABLE analytics.llm_facts ALTER COLUMN cost TYPE bigint USING (cost * 1e12)::bigint;
ALTER TABLE analytics.llm_facts RENAME COLUMN cost TO cost_pico;
COMMENT ON COLUMN analytics.llm_facts.cost_pico IS
    'cost in 10^-12 USD (exact); NULL when the model had no price at created_at';
ALTER TABLE analytics.rollup_state ADD COLUMN buckets_stale boolean NOT NULL DEFAULT false;
