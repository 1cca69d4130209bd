-- 0002: what the pipeline keeps beside the seed schema, in its own schema `agentstream`.
-- The seed's tables in `public` stay exactly as the seed wrote them.

-- Parents created from what a child carried, before the real record arrived (the
-- "inferred member" pattern). While a row is listed here, the real record replaces every
-- field of it whatever the timestamps; then its line is deleted.
CREATE TABLE agentstream.inferred_members (
    entity      text        NOT NULL CHECK (entity IN ('sessions', 'agents')),
    id          uuid        NOT NULL,
    inferred_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, id)
);

-- Change log written by the sink in the same transaction as the rows it inserts or
-- updates: analytics reads it from its watermark to recompute only the touched buckets.
CREATE TABLE agentstream.change_log (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity    text        NOT NULL,
    id        uuid        NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT now()
);
