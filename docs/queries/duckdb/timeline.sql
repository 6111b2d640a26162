-- Errors per cause per hour (UTC buckets aligned on the epoch) (DuckDB).
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
)
SELECT time_bucket(INTERVAL 1 HOUR, ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket, cause, count(*) AS errors
FROM e
GROUP BY bucket, cause
ORDER BY bucket, cause;
