-- One home for each repeated rule (issue 10 items 3 and 5).

-- Which refusals an Idempotency-Key remembers is data, not a list kept by
-- hand in each route: api.submit_prediction, api.redeem_reward and
-- api.click_ad store a refusal whose SQLSTATE is marked here (the flags are
-- set in plpgsql/00_error_codes.sql, next to the codes).
alter table crypto.error_codes
add column remembered_by_idempotency_key boolean not null default false;

comment on column crypto.error_codes.remembered_by_idempotency_key is
'A refusal with this SQLSTATE is stored under the request''s Idempotency-Key and replayed to a retry.';

-- 0003 said the worker and the CLI call this schema; they call crypto.*.
comment on schema api is
'What the HTTP shim may call, and nothing else; the worker and oxp call crypto.* functions '
'(and read api.error_codes() and api.environment(), as every process does at start-up)';

-- Renamed to tg_<table>__<task>: plpgsql/alerts.sql creates the new
-- function and the trigger again.
drop trigger if exists system_health_alerts on crypto.system_health;
drop function if exists crypto.alert_from_health();
