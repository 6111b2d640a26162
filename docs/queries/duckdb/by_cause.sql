-- Errors by cause × table × bind role (DuckDB). Replace 'app.log' with your files ('logs/*.jsonl' works).
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
SELECT cause, table_name AS "table", bind_role, count(*) AS errors
FROM e
GROUP BY cause, table_name, bind_role
ORDER BY errors DESC, cause, "table" NULLS LAST, bind_role NULLS LAST;
