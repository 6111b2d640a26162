-- Replica lag at error time, per bind (BigQuery GoogleSQL). PERCENTILE_CONT is an analytic (window)
-- function in BigQuery, exact and interpolated like the other engines' percentile_cont; ANY_VALUE
-- then collapses the per-row copies. APPROX_QUANTILES(lag_seconds, 100)[OFFSET(95)] is the cheaper,
-- approximate alternative on very large tables.
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
), w AS (
  SELECT bind_name, bind_role, lag_seconds,
         PERCENTILE_CONT(lag_seconds, 0.5) OVER (PARTITION BY bind_name, bind_role) AS p50_s,
         PERCENTILE_CONT(lag_seconds, 0.95) OVER (PARTITION BY bind_name, bind_role) AS p95_s
  FROM e WHERE has_replica
)
SELECT bind_name, bind_role, COUNT(*) AS errors, COUNT(lag_seconds) AS measured,
       ANY_VALUE(p50_s) AS p50_s, ANY_VALUE(p95_s) AS p95_s, MAX(lag_seconds) AS max_s
FROM w
GROUP BY bind_name, bind_role
ORDER BY errors DESC, bind_name;
