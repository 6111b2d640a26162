-- Duplicate-submission clusters (PostgreSQL jsonb; tested on PostgreSQL 15): same context.key, at least two
-- distinct context.id, each record at most 60 s (60000 ms) after the previous one with that key.
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
), k AS (
    SELECT context_key, context_id, context_name, ts, (extract(epoch FROM ts) * 1000)::bigint AS ms
    FROM e WHERE context_key IS NOT NULL AND ts IS NOT NULL
), g AS (
    SELECT *, CASE WHEN ms - lag(ms) OVER (PARTITION BY context_key ORDER BY ms) > 60000 THEN 1 ELSE 0 END AS brk
    FROM k
), c AS (
    SELECT *, sum(brk) OVER (PARTITION BY context_key ORDER BY ms) AS cluster FROM g
)
SELECT context_key AS "key", min(context_name) AS name, count(*) AS events,
       count(DISTINCT context_id) AS ids, min(ts) AS first_seen, max(ts) AS last_seen
FROM c
GROUP BY context_key, cluster
HAVING count(DISTINCT context_id) >= 2
ORDER BY events DESC, first_seen, "key";
