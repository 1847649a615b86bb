-- A session left idle inside its transaction keeps its row locks and holds
-- back vacuum's horizon for the whole cluster (the rate-limit and job
-- tables churn all day) until someone notices. The API's logins end such a
-- session after 10 s (00_api_logins.sql); these are the other logins'
-- limits, longer because their transactions do more between statements,
-- but never unbounded:
-- - oxp_service, the worker and pg_cron's jobs: no job waits on the outside
--   world inside a transaction (a price fetch, a vendor's call, a mail are
--   made between transactions), so minutes mean a stuck process. The worker
--   reconnects and its job's lease hands the job on (worker.run_forever).
-- - oxp_operator, a login an operator may use with psql: a quarter of an
--   hour to read before committing. The CLI, which logs in as DATABASE_URL's
--   user and then sets this role, sets the same for its session
--   (ox_cli.common.service_connection).
-- - auditor, read-only psql sessions: its snapshot, not locks, is what it
--   holds, half an hour.
-- Here, not in a versioned file: a dump does not carry a role's settings,
-- and every migrate sets them again. New sessions only.
alter role oxp_service set idle_in_transaction_session_timeout = '5min';
alter role oxp_operator set idle_in_transaction_session_timeout = '15min';
alter role auditor set idle_in_transaction_session_timeout = '30min';
