-- Replica lag at error time, per bind (ClickHouse; tested with chDB). quantileExactInclusive interpolates
-- linearly like PostgreSQL's percentile_cont and DuckDB's quantile_cont.
WITH records AS (
    -- structlog / python-json-logger: {"sa_explain": {...}}; a stringified record: {"sa_explain": "{...}"};
    -- a Sentry event: {"contexts": {"sa_explain": {...}}}. One log line per row in column json (String).
    SELECT multiIf(JSONType(json, 'sa_explain') = 'Object', JSONExtractRaw(json, 'sa_explain'),
                   JSONType(json, 'sa_explain') = 'String', JSONExtractString(json, 'sa_explain'),
                   JSONExtractRaw(json, 'contexts', 'sa_explain')) AS r
    FROM file('app.log', 'JSONAsString')
), e AS (
    SELECT parseDateTime64BestEffortOrNull(JSONExtractString(r, 'timestamp'), 3, 'UTC') AS ts,
           JSONExtract(r, 'cause', 'Nullable(String)') AS cause,
           JSONExtract(r, 'table', 'Nullable(String)') AS table_name,
           JSONExtract(r, 'bind', 'role', 'Nullable(String)') AS bind_role,
           JSONExtract(r, 'bind', 'name', 'Nullable(String)') AS bind_name,
           if(JSONType(r, 'identity') = 'Array', JSONExtractRaw(r, 'identity'), NULL) AS identity,
           JSONType(r, 'replica') = 'Object' AS has_replica,
           JSONExtract(r, 'replica', 'lag_seconds', 'Nullable(Float64)') AS lag_seconds,
           JSONExtract(r, 'context', 'key', 'Nullable(String)') AS context_key,
           JSONExtract(r, 'context', 'id', 'Nullable(String)') AS context_id,
           JSONExtract(r, 'context', 'name', 'Nullable(String)') AS context_name
    FROM records
    WHERE JSONExtractString(r, 'schema') = 'sa_explain/1'
)
SELECT bind_name, bind_role, count() AS errors, count(lag_seconds) AS measured,
       quantileExactInclusive(0.5)(lag_seconds) AS p50_s, quantileExactInclusive(0.95)(lag_seconds) AS p95_s,
       max(lag_seconds) AS max_s
FROM e
WHERE has_replica
GROUP BY bind_name, bind_role
ORDER BY errors DESC, bind_name;
