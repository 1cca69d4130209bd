-- 0008: what `agentstream rollup` needs under its least-privilege role (0004).
-- * A full rebuild drops and rebuilds the facts' indexes, which only the table's owner may
--   do, with CREATE on the schema: the facts tables now belong to agentstream_rollup (its
--   members act as the owner). Before, a full rebuild (and so the first run) failed under
--   that role.
-- * The rollup deletes the change_log lines it has folded in (the table grew forever);
--   those folded before this migration go now.
GRANT CREATE ON SCHEMA analytics TO agentstream_rollup;
ALTER TABLE analytics.llm_facts OWNER TO agentstream_rollup;
ALTER TABLE analytics.exec_facts OWNER TO agentstream_rollup;
GRANT DELETE ON agentstream.change_log TO agentstream_rollup;
DELETE FROM agentstream.change_log WHERE seq <= (SELECT watermark FROM analytics.rollup_state);
