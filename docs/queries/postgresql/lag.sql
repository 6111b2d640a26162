-- Replica lag at error time, per bind (PostgreSQL jsonb; tested on PostgreSQL 15).
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
SELECT bind_name, bind_role, count(*) AS errors, count(lag_seconds) AS measured,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_seconds) AS p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY lag_seconds) AS p95_s,
       max(lag_seconds) AS max_s
FROM e
WHERE has_replica
GROUP BY bind_name, bind_role
ORDER BY errors DESC, bind_name;
