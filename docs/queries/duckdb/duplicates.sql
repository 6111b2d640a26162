-- Duplicate-submission clusters (DuckDB): the same context.key, at least two distinct context.id,
-- each record at most 60 s (60000 ms) after the previous one with that key.
WITH lines AS (
    SELECT json FROM read_ndjson_objects('app.log')
), records AS (
    -- structlog / python-json-logger: {"sa_explain": {...}}; a stringified record: {"sa_explain": "{...}"};
    -- a Sentry event: {"contexts": {"sa_explain": {...}}}.
    SELECT CASE json_type(json, '$.sa_explain')
             WHEN 'OBJECT' THEN json -> '$.sa_explain'
             WHEN 'VARCHAR' THEN CAST(json ->> '$.sa_explain' AS JSON)
             ELSE json -> '$.contexts.sa_explain'
           END AS r
    FROM lines
), e AS (
    SELECT CAST(r ->> '$.timestamp' AS TIMESTAMPTZ) AS ts,
           r ->> '$.cause' AS cause,
           r ->> '$.table' AS table_name,
           r ->> '$.bind.role' AS bind_role,
           r ->> '$.bind.name' AS bind_name,
           CAST(r -> '$.identity' AS VARCHAR) AS identity,
           r -> '$.replica' AS replica,
           CAST(r ->> '$.replica.lag_seconds' AS DOUBLE) AS lag_seconds,
           r ->> '$.context.key' AS context_key,
           r ->> '$.context.id' AS context_id,
           r ->> '$.context.name' AS context_name
    FROM records
    WHERE r ->> '$.schema' = 'sa_explain/1'
), k AS (
    SELECT context_key, context_id, context_name, ts, epoch_ms(ts) AS ms
    FROM e WHERE context_key IS NOT NULL
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
