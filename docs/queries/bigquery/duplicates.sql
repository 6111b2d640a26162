-- Duplicate-submission clusters (BigQuery GoogleSQL): same context.key, at least two distinct
-- context.id, each record at most 60 s (60000 ms) after the previous one with that key.
-- Untested here (no BigQuery engine runs locally); written against GoogleSQL's documented JSON functions
-- (JSON_VALUE, JSON_QUERY, PARSE_JSON, SAFE.PARSE_JSON), TIMESTAMP_BUCKET-free bucketing and window functions.
-- Input: a Cloud Logging Log Analytics view with a JSON column json_payload (one log line per row),
-- e.g. `my-project.my_dataset._AllLogs`; for a table of raw lines use SAFE.PARSE_JSON(line) as json_payload.
WITH records AS (
  SELECT CASE JSON_TYPE(json_payload.sa_explain)
           WHEN 'object' THEN json_payload.sa_explain
           WHEN 'string' THEN SAFE.PARSE_JSON(JSON_VALUE(json_payload.sa_explain))
           ELSE json_payload.contexts.sa_explain
         END AS r
  FROM `my-project.my_dataset._AllLogs`
), e AS (
  SELECT TIMESTAMP(JSON_VALUE(r, '$.timestamp')) AS ts,
         JSON_VALUE(r, '$.cause') AS cause,
         JSON_VALUE(r, '$.table') AS table_name,
         JSON_VALUE(r, '$.bind.role') AS bind_role,
         JSON_VALUE(r, '$.bind.name') AS bind_name,
         IF(JSON_TYPE(r.identity) = 'array', TO_JSON_STRING(r.identity), NULL) AS identity,
         JSON_TYPE(r.replica) = 'object' AS has_replica,
         LAX_FLOAT64(r.replica.lag_seconds) AS lag_seconds,
         JSON_VALUE(r, '$.context.key') AS context_key,
         JSON_VALUE(r, '$.context.id') AS context_id,
         JSON_VALUE(r, '$.context.name') AS context_name
  FROM records
  WHERE JSON_VALUE(r, '$.schema') = 'sa_explain/1'
), k AS (
  SELECT context_key, context_id, context_name, ts, UNIX_MILLIS(ts) AS ms
  FROM e WHERE context_key IS NOT NULL AND ts IS NOT NULL
), g AS (
  SELECT *, IF(ms - LAG(ms) OVER (PARTITION BY context_key ORDER BY ms) > 60000, 1, 0) AS brk FROM k
), c AS (
  SELECT *, SUM(brk) OVER (PARTITION BY context_key ORDER BY ms) AS cluster FROM g
)
SELECT context_key AS key, MIN(context_name) AS name, COUNT(*) AS events,
       COUNT(DISTINCT context_id) AS ids, MIN(ts) AS first_seen, MAX(ts) AS last_seen
FROM c
GROUP BY context_key, cluster
HAVING COUNT(DISTINCT context_id) >= 2
ORDER BY events DESC, first_seen, key;
