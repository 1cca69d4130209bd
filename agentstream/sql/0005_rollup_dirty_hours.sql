-- 0005: the hours whose rollup rows are stale. An incremental rollup runs in two
-- transactions: the first upserts the facts and records the hours they touched here; the
-- second rebuilds those hours (and their days) from the committed facts and clears them.
-- A run that dies in between leaves its hours here, and the next run rebuilds them.
CREATE TABLE analytics.dirty_hours (
    kind text        NOT NULL CHECK (kind IN ('llm', 'exec')),
    hour timestamptz NOT NULL,
    PRIMARY KEY (kind, hour)
);
