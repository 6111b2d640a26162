-- Replica lag at error time, per bind: p50, p95 (continuous, interpolated) and max (DuckDB).
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
SELECT bind_name, bind_role, count(*) AS errors, count(lag_seconds) AS measured,
       quantile_cont(lag_seconds, 0.5) AS p50_s, quantile_cont(lag_seconds, 0.95) AS p95_s,
       max(lag_seconds) AS max_s
FROM e
WHERE replica IS NOT NULL AND CAST(replica AS VARCHAR) <> 'null'
GROUP BY bind_name, bind_role
ORDER BY errors DESC, bind_name;
