-- Errors by cause × table × bind role (ClickHouse; tested with chDB). Replace file('app.log', 'JSONAsString')
-- with your table of raw log lines (a String column named json).
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
SELECT cause, table_name AS `table`, bind_role, count() AS errors
FROM e
GROUP BY cause, table_name, bind_role
ORDER BY errors DESC, cause, `table` ASC NULLS LAST, bind_role ASC NULLS LAST;
