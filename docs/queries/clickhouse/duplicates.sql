-- Duplicate-submission clusters (ClickHouse; tested with chDB): same context.key, at least two distinct
-- context.id, each record at most 60 s (60000 ms) after the previous one with that key.
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
), k AS (
    SELECT context_key, context_id, context_name, ts, toUnixTimestamp64Milli(ts) AS ms
    FROM e WHERE context_key IS NOT NULL AND ts IS NOT NULL
), g AS (
    SELECT *, if(ms - lagInFrame(ms, 1, ms) OVER (PARTITION BY context_key ORDER BY ms
                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) > 60000, 1, 0) AS brk
    FROM k
), c AS (
    SELECT *, sum(brk) OVER (PARTITION BY context_key ORDER BY ms
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cluster
    FROM g
)
SELECT context_key AS key, min(context_name) AS name, count() AS events,
       uniqExact(context_id) AS ids, min(ts) AS first_seen, max(ts) AS last_seen
FROM c
GROUP BY context_key, cluster
HAVING uniqExact(context_id) >= 2
ORDER BY events DESC, first_seen, key;
