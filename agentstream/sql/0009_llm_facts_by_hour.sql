-- 0009: LLM facts keyed by (hour, id).
-- LLM interactions are immutable (first write wins) and the sink logs one only when it
-- inserts it, so an incremental rollup folds in facts that are new, in the latest hours.
-- Keyed by id alone (random uuids), each of 10k new facts went into its own leaf page of a
-- 2M-entry primary key, and was looked up there first to find the hour it had been in
-- (measured: ~60 ms lookups + ~130 ms of inserts of a 0.62 s run). Keyed by (hour, id), new
-- facts go to the right edge of the key, and a fact's hour never changes, so it needs no
-- lookup. The key also serves the reads by hour: the separate hour index goes.
-- Rebuilds the key (~1-2 s per 2M facts, writes to the facts blocked meanwhile).
ALTER TABLE analytics.llm_facts DROP CONSTRAINT llm_facts_pkey;
DROP INDEX analytics.llm_facts_hour;
ALTER TABLE analytics.llm_facts ADD PRIMARY KEY (hour, id);
