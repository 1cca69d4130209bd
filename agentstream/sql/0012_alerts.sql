-- 0012: alerts fired by `agentstream alerts run` (docs/alerts.md), one row per
-- (rule, group key, window start, level): the unique key absorbs an alert repeated after
-- a crash of the alerts process (its id is derived from the same four values).
CREATE TABLE agentstream.alerts (
    id           uuid PRIMARY KEY,
    rule         text NOT NULL,
    metric       text NOT NULL,
    group_by     text NOT NULL,
    group_key    text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    level        text NOT NULL,
    threshold    numeric NOT NULL,
    value        numeric NOT NULL,
    record_count bigint NOT NULL,
    fired_at     timestamptz NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule, group_key, window_start, level)
);
CREATE INDEX alerts_fired_at ON agentstream.alerts (fired_at);

GRANT INSERT, SELECT ON agentstream.alerts TO agentstream_writer;
GRANT SELECT ON agentstream.alerts TO agentstream_analyst;
