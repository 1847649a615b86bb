-- Defaults only: an admin's change survives every migrate.
insert into crypto.settings (key, value, description) values
('environment', '"development"', 'development or production; production refuses clock shifts and resets'),
('clock.offset_seconds', '0', 'Shift of the database clock, for demos and tests'),
('points.per_win', '100', 'Points for a correct prediction'),
('predictions.base_limit', '3', 'Predictions per user and session before ad unlocks'),
('ads.max_slot_unlocks', '7', 'Ad slot unlocks per user and session'),
('ads.max_point_rewards', '5', 'Ad point rewards per user and session'),
('ads.max_impressions', '50', 'Ads shown (clicks recorded) per user and session, paid or not'),
(
    'ads.ssv_max_age_seconds', '86400',
    'Oldest ad network callback (by its timestamp) that still pays; a retry after an outage arrives late'
),
('settlement.threshold', '0.0001', 'A change this large (0.01%) or larger decides UP or DOWN'),
('eod.fetch_delay_minutes', '15', 'Minutes after the calendar close before closes are fetched'),
(
    'eod.void_deadline_minutes', '120',
    'Closes still missing this many minutes before the next session''s cutoff are settled VOID'
),
('eod.retry_max_seconds', '900', 'Longest wait between two attempts of a price fetch'),
(
    'jobs.lease_seconds', '600',
    'Seconds a running job stays its worker''s; a worker that died mid-job loses it then, and another takes it'
),
('backups.late_full_days', '8', 'Days without a successful full backup before the backup_late alert opens'),
('backups.late_any_days', '2', 'Days without any successful backup (full, diff or incr) before backup_late opens'),
('alerts.http_min_requests', '200', 'Requests in 5 minutes before the API''s 5xx rate can open an alert'),
('rewards.vendor_failure_rate', '0', 'Share (0 to 1) of issues the simulated reward vendor refuses'),
('ratelimit.ip_per_minute', '100', 'Requests per client IP per minute, every route'),
('ratelimit.predictions_per_minute', '5', 'Prediction submissions per user per minute'),
('ratelimit.predictions_per_hour', '30', 'Prediction submissions per user per hour'),
('ratelimit.point_reads_per_minute', '20', 'Points balance and ledger reads per user per minute'),
('ratelimit.lease_max', '1000', 'Most requests of one subject an API process may let through between two counts'),
(
    'ratelimit.lease_share', '0.1',
    'Share of a rate limit an API process may let through on its own between two counts (0: count every request)'
),
('auth.refresh_ttl_days', '30', 'Days a refresh token stays valid if unused'),
('auth.refresh_family_days', '90', 'Days a refresh family lives at most, however often it is rotated'),
('auth.admin_family_hours', '12', 'Hours an admin refresh family lives at most'),
('auth.login_max_failures', '10', 'Wrong passwords for one email within the window before it is refused (429)'),
('auth.login_window_minutes', '15', 'Window of auth.login_max_failures'),
('auth.mfa_max_failures', '5', 'Wrong one-time codes for one admin within the window before the lock'),
('auth.mfa_window_minutes', '15', 'Window of auth.mfa_max_failures'),
('auth.mfa_lockout_minutes', '15', 'Minutes an admin''s sign-in stays locked after too many wrong codes'),
('auth.email_verify_hours', '24', 'Hours an email verification link stays valid'),
('retention.expired_days', '30', 'Days expired sign-in states, refresh tokens, links and idempotent requests are kept'),
(
    'retention.eod_fetch_logs_days', '400',
    'Days of price-fetch logs kept; older whole months of crypto.eod_fetch_logs are archived, then dropped'
),
(
    'retention.ledger_hot_months', '13',
    'Whole months of the ledger kept on the main disk; older ones move to the tablespace oxp_cold, where it exists'
),
(
    'retention.rate_limits_days', '1',
    'Days of rate-limit windows kept; older whole days of crypto.rate_limits are dropped (only 2 hours are read)'
),
('auth.oauth_state_minutes', '10', 'Minutes an OAuth sign-in may take from redirect to callback'),
('calendar.cutoff_minutes', '5', 'Predictions close this many minutes before the NYSE open'),
('schedule.open_hour_kst', '6', 'Hour (KST) after a trading day at which the next session opens'),
(
    'universe.default', '["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]',
    'Symbols of a session when neither an admin nor a previous session set them'
)
on conflict (key) do nothing;

-- Whether no ledger entry is dated more than a day before one written
-- earlier (crypto.ledger_page then reads only the last month). True on a
-- new ledger, and on one whose clock never moved (no clock.set in the
-- audit log, which is never dropped: only clock_set shifts the clock);
-- crypto.clock_set, and clock_reset of a shifted clock, make it false for
-- good.
insert into crypto.settings (key, value, description)
select
    'ledger.dates_follow_ids' as key,
    to_jsonb(
        not exists (select from crypto.ledger_entries)
        or not exists (
            select from crypto.audit_logs as l
            where l.action = 'clock.set'
        )
    ) as value,
    'false once the clock was moved: ledger pages then read every month' as description
on conflict (key) do nothing;

create or replace function crypto.setting(p_key text) returns jsonb
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v jsonb;
begin
    select s.value into v from crypto.settings as s where s.key = p_key;
    if not found then
        -- A bug of the deploy, not a player's refusal: a 500 that no
        -- Idempotency-Key remembers (a NOT_FOUND would be replayed to
        -- every retry of that key after the fix).
        raise exception using errcode = 'OX231', message = 'SETTING_MISSING',
            detail = format('No setting %s', p_key);
    end if;
    return v;
end
$$;

create or replace function crypto.setting_int(p_key text) returns bigint
language plpgsql stable
set search_path = crypto, pg_temp
as $$
begin
    return (crypto.setting(p_key) #>> '{}')::bigint;
end
$$;

-- A duration setting as an interval, in the unit its key ends with
-- (_seconds, _minutes, _hours, _days): the unit is read in one place, and
-- callers need no cast for make_interval's integer arguments.
create or replace function crypto.setting_interval(p_key text) returns interval
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_unit interval := case substring(p_key from '_([a-z]+)$')
        when 'seconds' then interval '1 second'
        when 'minutes' then interval '1 minute'
        when 'hours' then interval '1 hour'
        when 'days' then interval '1 day'
    end;
begin
    if v_unit is null then
        raise exception using errcode = 'OX230', message = 'SETTING_NOT_A_DURATION',
            detail = format('%s does not end with _seconds, _minutes, _hours or _days', p_key);
    end if;
    return crypto.setting_int(p_key) * v_unit;
end
$$;

create or replace function crypto.is_production() returns boolean
language sql stable
set search_path = crypto, pg_temp
as $$ select crypto.setting('environment') #>> '{}' = 'production' $$;

-- Times leave the database in Korea time, the game's home zone. Stable,
-- as to_char is: a SQL function whose body is less immutable than it says
-- is never inlined, and a page of 20 rows then ran it through the
-- function manager 20 times (a fifth of a ledger page's time).
create or replace function crypto.kst(p_at timestamptz) returns text
language sql stable
as $$ select to_char(p_at at time zone 'Asia/Seoul', 'YYYY-MM-DD"T"HH24:MI:SS"+09:00"') $$;

grant execute on function crypto.kst(timestamptz) to app_user, app_admin, oxp_service, auditor;
