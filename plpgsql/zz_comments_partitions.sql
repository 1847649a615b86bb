comment on function crypto.partition_maintenance() is
'pg_cron hourly (oxp_service): pg_partman creates the partitions ahead; rate_limits partitions past their '
'retention setting are dropped (eod_fetch_logs'' go through the archive); audit_logs'' and the money tables'' '
'never are.';
comment on function crypto.partition_maintenance(text) is
'The work of crypto.partition_maintenance(); puts the caller''s search_path back, which pg_partman overrides.';
comment on function crypto.partitioned_tables() is
'The range-partitioned tables whose partitions crypto.partition_maintenance and crypto.clock_set make ahead.';
comment on function crypto.clock_moved() is
'Marks the ledger''s dates as no longer following its ids (clock_set, clock_reset; owner only).';
comment on function crypto.ledger_dates_follow_ids() is
'Whether a ledger page may read the last month alone (false once the clock moved; owner only).';
comment on function crypto.partitions_to_archive() is
'The log partitions past their retention that the archive (job partition.archive) writes to a file and drops; '
'oldest first.';
comment on function crypto.enqueue_archive() is
'pg_cron daily (oxp_service): enqueues the partition.archive job when a log partition is past its retention.';
comment on function crypto.partition_archive_rows(text) is
'The worker''s read of a due log partition: its rows as JSON in id order, its writers held off until the '
'transaction ends (OX178 when not due).';
comment on function crypto.partition_archived(text, bigint, text, text) is
'The worker''s word, while it holds a partition.archive job, that the rows read in this transaction are in a '
'file it read back: counts them and computes their SHA-256 itself, records the file (crypto.partition_archives) '
'and drops the partition, or changes nothing (OX178, OX179, OX265; 55P03 when a writer waits on the month).';
comment on function crypto.cold_months_due() is
'The ledger''s months past retention.ledger_hot_months not yet in the tablespace oxp_cold, oldest first, with '
'their next step (freeze, digest, wait for a restore drill, move); none without oxp_cold.';
comment on function crypto.enqueue_cold_storage() is
'pg_cron daily (oxp_service): enqueues the partition.cold job when a ledger month has a step to take.';
comment on function crypto.cold_backed_up(jsonb, text) is
'The restore drill''s word, while the worker holds a backup.verify job: these frozen months were found in the '
'restored backup with these rows and digest; those that match what was frozen may move (OX265; 42501 for an '
'operator''s login).';
comment on function crypto.cold_step(text) is
'The worker''s next step of one ledger month on its way to oxp_cold, while it holds a partition.cold job: '
'freeze, digest, copy, keys, their check, or the swap (OX181, OX182, OX265; 55P03 when its locks are held).';
