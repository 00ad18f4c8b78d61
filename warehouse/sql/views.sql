-- Inspection views, refreshed on every write. Query them with `etl sql`.

-- Every landed message, with who wrote it and where it belongs.
CREATE OR REPLACE VIEW messages AS
SELECT
    source,
    source_id,
    conversation_id,
    conversation_title,
    sent_at,
    coalesce(sender_name, sender) AS author,
    is_owner,
    CASE WHEN is_owner THEN 'owner' WHEN NOT is_owner THEN 'other' ELSE 'unknown' END AS owner,
    kind,
    text,
    reply_to,
    metadata,
    ingest_run_id
FROM raw_messages;

-- How much landed, per source, kind and owner flag.
CREATE OR REPLACE VIEW source_counts AS
SELECT
    source,
    kind,
    CASE WHEN is_owner THEN 'owner' WHEN NOT is_owner THEN 'other' ELSE 'unknown' END AS owner,
    count(*) AS messages,
    count(DISTINCT conversation_id) AS conversations,
    min(sent_at) AS first_sent,
    max(sent_at) AS last_sent
FROM raw_messages
GROUP BY ALL
ORDER BY source, kind, owner;

-- What each build threw away, and why.
CREATE OR REPLACE VIEW build_drop_reasons AS
SELECT version, stage, reason, count(*) AS dropped
FROM build_drops
WHERE version IN (SELECT version FROM builds WHERE status = 'complete')
GROUP BY ALL
ORDER BY version, stage, dropped DESC;

-- What went into each version, per split and source.
CREATE OR REPLACE VIEW build_split_counts AS
SELECT version, split, source, count(*) AS examples
FROM build_examples
WHERE version IN (SELECT version FROM builds WHERE status = 'complete')
GROUP BY ALL
ORDER BY version, split, source;

-- Quarantined rows with the run they came from.
CREATE OR REPLACE VIEW quarantine_by_reason AS
SELECT source, reason, count(*) AS rows
FROM quarantine
GROUP BY ALL
ORDER BY rows DESC;
