-- oxp jobs cancel: a job an operator called off is never claimed again,
-- and stays distinct from one that used up its attempts (dead).
alter type crypto.job_status add value if not exists 'cancelled';

-- crypto.user_by_email gained an enabled-only option (plpgsql/auth.sql).
drop function if exists crypto.user_by_email(text);
