comment on function crypto.partition_maintenance() is
'pg_cron hourly (oxp_service): pg_partman creates the partitions ahead; eod_fetch_logs and rate_limits '
'partitions past their retention setting are dropped; audit_logs and predictions partitions never are.';
comment on function crypto.partition_maintenance(text) is
'The work of crypto.partition_maintenance(); puts the caller''s search_path back, which pg_partman overrides.';
comment on function crypto.partitioned_tables() is
'The range-partitioned tables whose partitions crypto.partition_maintenance and crypto.clock_set make ahead.';
comment on function crypto.clock_moved() is
'Marks the ledger''s dates as no longer following its ids (clock_set, clock_reset; owner only).';
comment on function crypto.ledger_dates_follow_ids() is
'Whether a ledger page may read the last month alone (false once the clock moved; owner only).';
