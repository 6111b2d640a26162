-- Top identities (PostgreSQL jsonb; tested on PostgreSQL 15). jsonb equality groups [42] and [42] however spaced.
WITH records AS (
    -- structlog / python-json-logger: {"sa_explain": {...}}; a stringified record: {"sa_explain": "{...}"};
    -- a Sentry event: {"contexts": {"sa_explain": {...}}}. One log line per row: app_log(line jsonb).
    SELECT CASE jsonb_typeof(line -> 'sa_explain')
             WHEN 'object' THEN line -> 'sa_explain'
             WHEN 'string' THEN (line ->> 'sa_explain')::jsonb
             ELSE line -> 'contexts' -> 'sa_explain'
           END AS r
    FROM app_log
), e AS (
    SELECT (r ->> 'timestamp')::timestamptz AS ts,
           r ->> 'cause' AS cause,
           r ->> 'table' AS table_name,
           r -> 'bind' ->> 'role' AS bind_role,
           r -> 'bind' ->> 'name' AS bind_name,
           CASE WHEN jsonb_typeof(r -> 'identity') = 'array' THEN r -> 'identity' END AS identity,
           jsonb_typeof(r -> 'replica') = 'object' AS has_replica,
           (r -> 'replica' ->> 'lag_seconds')::double precision AS lag_seconds,
           r -> 'context' ->> 'key' AS context_key,
           r -> 'context' ->> 'id' AS context_id,
           r -> 'context' ->> 'name' AS context_name
    FROM records
    WHERE r ->> 'schema' = 'sa_explain/1'
)
SELECT table_name AS "table", identity, count(*) AS errors, min(ts) AS first_seen, max(ts) AS last_seen
FROM e
WHERE identity IS NOT NULL
GROUP BY table_name, identity
ORDER BY errors DESC, "table" NULLS LAST, identity
LIMIT 10;
