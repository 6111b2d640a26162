-- Errors by cause × table × bind role (PostgreSQL, log lines in a jsonb column; tested on PostgreSQL 15).
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
SELECT cause, table_name AS "table", bind_role, count(*) AS errors
FROM e
GROUP BY cause, table_name, bind_role
ORDER BY errors DESC, cause, "table" NULLS LAST, bind_role NULLS LAST;
