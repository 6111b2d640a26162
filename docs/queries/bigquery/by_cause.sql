-- Errors by cause × table × bind role (BigQuery GoogleSQL).
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
)
SELECT cause, table_name AS `table`, bind_role, COUNT(*) AS errors
FROM e
GROUP BY cause, `table`, bind_role
ORDER BY errors DESC, cause, `table` NULLS LAST, bind_role NULLS LAST;
