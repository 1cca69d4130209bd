-- 0013: every rollup bucket rebuilt by the next `agentstream rollup`.
-- Rollups run between 4859588 and 3430066 wrote the `agent` and `session` keys of
-- analytics.llm_rollup and analytics.exec_rollup as the ids' escaped bytes instead of their
-- text, and an incremental run rewrites only the days it touches. The facts are right, so
-- marking the buckets stale (the flag a full rebuild sets, 0006) is enough: the next run
-- rebuilds every bucket from them, and readers see the old rows until it commits.
UPDATE analytics.rollup_state SET buckets_stale = true;
