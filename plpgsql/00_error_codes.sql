-- The one table that gives every error its stable code and HTTP status.
-- SQL raises with the SQLSTATE; the shim maps SQLSTATE to code and status
-- by reading this table, never by matching message text.
insert into crypto.error_codes (sqlstate, code, http_status, title) values
('OX000', 'VALIDATION_FAILED', 422, 'The request is not valid'),
('OX001', 'INVALID_TOKEN', 401, 'Missing, expired or invalid credentials'),
('OX002', 'INVALID_CREDENTIALS', 401, 'Wrong email or password'),
('OX003', 'FORBIDDEN', 403, 'Not allowed for this account'),
('OX004', 'NOT_FOUND', 404, 'No such resource'),
('OX005', 'RATE_LIMITED', 429, 'Too many requests'),
('OX006', 'EMAIL_TAKEN', 409, 'An account with this email exists'),
('OX007', 'IDEMPOTENCY_KEY_REUSED', 422, 'The Idempotency-Key was used for another request'),
('OX008', 'REFUSED_IN_PRODUCTION', 403, 'Refused in production'),
('OX009', 'METHOD_NOT_ALLOWED', 405, 'This method is not allowed here'),
('OX010', 'MFA_REQUIRED', 401, 'A one-time code from the authenticator app is required'),
('OX011', 'OAUTH_FAILED', 400, 'The sign-in with the identity provider failed'),
('OX012', 'EMAIL_NOT_VERIFIED', 403, 'The identity provider has not verified this email'),
('OX013', 'MFA_LOCKED', 429, 'Too many wrong one-time codes; sign-in is locked for a while'),
('OX014', 'EMAIL_LINK_INVALID', 400, 'The verification link is unknown, used or expired'),
('OX015', 'TOTP_KEY_MISMATCH', 503, 'The service holds another encryption key than its second factors need'),
('OX101', 'SESSION_CLOSED', 409, 'Predictions are closed for this session'),
('OX102', 'SYMBOL_NOT_IN_UNIVERSE', 422, 'The symbol is not in this session''s universe'),
('OX103', 'PREDICTION_EXISTS', 409, 'A prediction for this symbol exists'),
('OX104', 'DAILY_LIMIT_REACHED', 409, 'The daily prediction limit is reached'),
('OX105', 'NO_SESSION', 404, 'No session for this trading day'),
('OX106', 'INVALID_TRANSITION', 409, 'The session cannot move to that phase'),
('OX107', 'PRICES_MISSING', 409, 'End-of-day prices are missing'),
('OX108', 'NOT_A_TRADING_DAY', 422, 'Not a trading day in the calendar'),
('OX109', 'PRICE_ALREADY_SETTLED', 409, 'A settled price cannot change'),
('OX110', 'MARKET_NOT_CLOSED', 409, 'New York has not closed this trading day yet'),
('OX111', 'NOT_SETTLED', 409, 'The session is not settled yet'),
('OX120', 'UNKNOWN_SETTING', 404, 'No such setting'),
('OX121', 'SETTING_READ_ONLY', 409, 'This setting is not changed this way'),
('OX122', 'JOB_STATE_CONFLICT', 409, 'The job cannot do that in its state'),
('OX123', 'NOT_AN_ADMIN', 409, 'The user is not an admin'),
('OX124', 'ALREADY_ADMIN', 409, 'The user is an admin already'),
-- Raised by oxp itself (no SQL function asks a question); kept here so
-- every stable code lives in one table.
('OX125', 'CONFIRMATION_REQUIRED', 428, 'This action needs a confirmation'),
('OX126', 'KEY_ROTATED_RECENTLY', 409, 'The signing key was rotated within the access-token lifetime'),
('OX127', 'TICK_FAILED', 500, 'A scheduled step failed; the run records the error'),
('OX128', 'MIGRATION_FAILED', 500, 'A migration failed; nothing of it was applied'),
('OX129', 'ENVIRONMENT_MISMATCH', 503, 'This process and the database are of different environments (ENV)'),
-- A bug, not a request: a rule read a setting as a duration that is none.
('OX230', 'SETTING_NOT_A_DURATION', 500, 'The setting is not a duration'),
('OX231', 'SETTING_MISSING', 500, 'A setting the code reads is not in crypto.settings'),
('OX201', 'INSUFFICIENT_POINTS', 409, 'Not enough points'),
('OX202', 'OUT_OF_STOCK', 409, 'The reward is out of stock'),
('OX203', 'REWARD_INACTIVE', 409, 'The reward is not available'),
('OX204', 'AD_LIMIT_REACHED', 409, 'The ad reward limit is reached'),
('OX205', 'REDEMPTION_FINAL', 409, 'The redemption can no longer change'),
('OX150', 'REDEMPTION_UNKNOWN', 409, 'The vendor has not said whether it issued this redemption'),
('OX151', 'REDEMPTION_NOT_UNKNOWN', 409, 'Only a redemption the vendor did not answer for is resolved'),
('OX130', 'UNKNOWN_SYMBOL', 422, 'The symbol is not a known ticker'),
('OX131', 'ALERT_RESOLVED', 409, 'The alert is resolved already'),
-- The ad network's server-side verification callback. The first four are
-- raised by the API (the signature is checked in Python, which can fetch
-- the network's keys); the others by api.ad_ssv_reward.
('OX160', 'AD_SSV_BAD_SIGNATURE', 403, 'The callback''s signature does not verify'),
('OX161', 'AD_SSV_UNKNOWN_KEY', 403, 'The callback names a key the ad network does not publish'),
('OX162', 'AD_SSV_MALFORMED', 400, 'The callback is not a well-formed verification callback'),
('OX163', 'AD_SSV_STALE', 403, 'The callback''s timestamp is too old or in the future'),
('OX164', 'AD_IMPRESSION_UNKNOWN', 404, 'No such ad impression'),
('OX165', 'AD_SSV_USER_MISMATCH', 403, 'The callback names another user than the impression''s'),
('OX166', 'AD_IMPRESSION_REWARDED', 409, 'The impression was rewarded by another transaction'),
-- Backups and the database's own availability (issue 12). Raised by the
-- shim and by oxp (pgBackRest runs outside SQL), named here all the same.
('OX170', 'DATABASE_UNAVAILABLE', 503, 'The database is unreachable; retry shortly'),
('OX171', 'BACKUP_FAILED', 500, 'The backup failed; nothing was kept of it'),
('OX172', 'RESTORE_OUT_OF_RANGE', 422, 'The time is outside the restorable range'),
('OX173', 'RESTORE_FAILED', 500, 'The restore failed'),
('OX174', 'BACKUP_NOT_CONFIGURED', 503, 'No backup repository is configured'),
('OX175', 'ARCHIVE_FAILED', 500, 'WAL does not reach the backup repository'),
('OX176', 'DATABASE_NOT_EMPTY', 409, 'The target database holds data already'),
('OX177', 'REPLACES_PRODUCTION', 409, 'This replaces the production database; say so explicitly'),
-- The log archive (plpgsql/partition_archive.sql).
('OX178', 'PARTITION_NOT_DUE', 409, 'The partition is not a log partition past its retention'),
('OX179', 'ARCHIVE_MISMATCH', 409, 'The archive does not hold the rows read in this transaction'),
-- Cold storage of the ledger's months (plpgsql/cold_storage.sql).
('OX181', 'COLD_NOT_DUE', 409, 'The partition is not a ledger month due for cold storage'),
('OX182', 'COLD_MISMATCH', 500, 'The copy does not hold the month''s rows as they were frozen'),
('OX250', 'REPLICA_FAILED', 500, 'The read replica could not be set up or reached'),
('OX251', 'REPLICA_EXISTS', 409, 'A replica is set up in that folder already'),
('OX265', 'JOB_LEASE_LOST', 409, 'The worker no longer holds this job: another attempt took it'),
('OX180', 'NICKNAME_TAKEN', 409, 'Another player has this nickname'),
('OX167', 'AD_SSV_UNKNOWN_AD_UNIT', 403, 'The callback is for an ad unit that is not ours'),
('23505', 'CONFLICT', 409, 'The resource exists'),
('23503', 'VALIDATION_FAILED', 422, 'A referenced resource does not exist'),
('23514', 'VALIDATION_FAILED', 422, 'A value breaks a rule'),
('22P02', 'VALIDATION_FAILED', 422, 'A value has the wrong format'),
('22007', 'VALIDATION_FAILED', 422, 'A date or time has the wrong format'),
('22008', 'VALIDATION_FAILED', 422, 'A date or time is out of range'),
('42501', 'FORBIDDEN', 403, 'Not allowed for this role'),
('57014', 'TIMEOUT', 503, 'The request took too long'),
('40001', 'RETRY', 503, 'A concurrent change; retry'),
('40P01', 'RETRY', 503, 'A concurrent change; retry')
on conflict (sqlstate) do update
    set code = excluded.code, http_status = excluded.http_status, title = excluded.title;

-- The refusals an Idempotency-Key remembers (crypto.idempotency_refusal):
-- a retry with the key gets the same answer even after the reason has gone
-- (a later ad unlock, a restock, points earned since). Only refusals of the
-- request itself: a malformed request (VALIDATION_FAILED), a conflict to
-- retry (RETRY) or a timeout is answered again on every try.
update crypto.error_codes as e
set remembered_by_idempotency_key = e.sqlstate in (
    'OX004', -- NOT_FOUND: no such reward or active ad
    'OX101', -- SESSION_CLOSED
    'OX102', -- SYMBOL_NOT_IN_UNIVERSE
    'OX103', -- PREDICTION_EXISTS
    'OX104', -- DAILY_LIMIT_REACHED
    'OX201', -- INSUFFICIENT_POINTS
    'OX202', -- OUT_OF_STOCK
    'OX203', -- REWARD_INACTIVE
    'OX204'  -- AD_LIMIT_REACHED
);

-- The shim reads the table once at start-up, as anon; oxp, as oxp_service,
-- when it has an error to name.
create or replace function api.error_codes()
returns table (sqlstate text, code text, http_status smallint, title text)
language sql stable security definer
set search_path = crypto, pg_temp
as $$ select e.sqlstate, e.code, e.http_status, e.title from crypto.error_codes as e $$;

grant execute on function api.error_codes() to anon, oxp_service;

-- Which world this database is, for processes that must refuse to run with
-- the wrong ENV (a development API would use development's keys and rules
-- on real players). Public: 'production' is no secret.
create or replace function api.environment() returns text
language sql stable security definer
set search_path = crypto, pg_temp
as $$ select s.value #>> '{}' from crypto.settings as s where s.key = 'environment' $$;

grant execute on function api.environment() to anon, oxp_service;

-- The stable code of a SQLSTATE, for functions that raise a rule's code
-- that they did not choose themselves.
create or replace function crypto.error_code(p_sqlstate text) returns text
language sql stable
set search_path = crypto, pg_temp
as $$ select coalesce((select e.code from crypto.error_codes as e where e.sqlstate = p_sqlstate), 'ERROR') $$;

grant execute on function crypto.error_code(text) to oxp_service, app_admin;

-- A refusal that must be remembered cannot be raised: raising rolls back
-- the record of it. Such functions store and return {"problem": ...}
-- instead, and the shim answers it exactly as it answers a raised error.
create or replace function crypto.problem(p_sqlstate text, p_detail text) returns jsonb
language sql immutable
as $$ select jsonb_build_object('problem', jsonb_build_object('sqlstate', p_sqlstate, 'detail', p_detail)) $$;

grant execute on function crypto.problem(text, text) to app_user, app_admin, oxp_service;
