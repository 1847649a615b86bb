-- A job's completion and failure name the attempt that claimed it (a
-- fencing token): a worker whose lease ran out, and whose job another
-- worker took, can no longer finish or requeue the job it lost. The new
-- signatures are in plpgsql/jobs.sql.
drop function if exists crypto.complete_job(bigint);
drop function if exists crypto.fail_job(bigint, text);
