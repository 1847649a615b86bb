-- crypto.schedule_tick records each run under the name of the job that
-- called it (plpgsql/schedule.sql).
drop function if exists crypto.schedule_tick();
