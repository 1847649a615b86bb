comment on function crypto.partition_maintenance() is
'pg_cron hourly (oxp_service): pg_partman creates the log tables'' partitions ahead; eod_fetch_logs and rate_limits '
'partitions past their retention setting are dropped; audit_logs partitions never are.';
comment on function crypto.partition_maintenance(text) is
'The work of crypto.partition_maintenance(); puts the caller''s search_path back, which pg_partman overrides.';
