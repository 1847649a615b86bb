-- The deploy window's shims and the replicas' heartbeat (sql/0035).
comment on function crypto.complete_job(bigint) is
'Pre-0031 workers only (oxp_service): completes a job this session still holds. Remove in the release after 0035.';
comment on function crypto.fail_job(bigint, text) is
'Pre-0031 workers only (oxp_service): fails a job this session still holds. Remove in the release after 0035.';
comment on function crypto.replica_heartbeat() is
'The worker''s commit every few seconds, so a replica''s replay age is its lag (oxp_service).';
