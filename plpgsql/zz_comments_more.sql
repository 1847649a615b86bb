-- Comments for \df+ (as plpgsql/zz_comments.sql; this file takes what did
-- not fit there under sqlfluff's 20,000-byte limit).
comment on function api.admin_resolve_redemption(bigint, text, text, text) is
'POST /admin/redemptions/{id}/resolve: an admin ends an UNKNOWN redemption as ISSUED (with the vendor''s reference) '
'or FAILED (refunded once), with a reason; admins only.';
comment on function crypto.mask_secret(text) is
'A secret shown to operators as **** and its last 4 characters (vendor references in redemption lists).';
comment on function crypto.redemption_json_masked(crypto.rewards_redemptions) is
'A redemption as operators and the auditor see it: the vendor reference masked (crypto.mask_secret).';
comment on function crypto.redemption_unknown(bigint, text) is
'The worker marks a redemption UNKNOWN when the vendor did not answer: still paid and reserved, asked again later.';
comment on function crypto.secret_digest(text) is
'The SHA-256 of a secret, hex: what the audit log keeps of a vendor reference instead of the reference.';
comment on function crypto.enqueue_backup(text) is
'pg_cron''s backup lines: queues a full, differential or incremental pgBackRest backup, '
'or the restore drill, for the worker.';
comment on function crypto.record_backup(text, timestamp with time zone, boolean, jsonb, text) is
'The worker records a backup or drill in job_runs and opens or clears the backup_failed alert.';
comment on function crypto.check_wal_archive() is
'pg_cron, every minute: pg_stat_archiver''s failures open the wal_archive_failing alert; archiving again clears it.';
comment on function crypto.check_backup_late() is
'From evaluate_alerts: no successful scheduled full backup within backups.late_full_days, or none of any kind '
'within backups.late_any_days, opens backup_late; the next success clears it.';

comment on function api.rate_limit_gate(text, uuid, text[], text[]) is
'Before a request''s call, in its transaction: counts it and says whether it may run. A refusal '
'lets the guarded call not run and commits its count (auth_service).';

comment on function api.rate_limit_note(text, uuid, text[]) is
'Counts nothing: kept for one release for the API before sql/0036, which calls it after each gated '
'call; the gate counts the IP now (auth_service).';
