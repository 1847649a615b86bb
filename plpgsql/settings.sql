-- Changing a tunable: one function for the CLI (`oxp settings set`) and a
-- future admin route, so both validate alike and both leave an audit row.
-- The rules are code, next to the function that applies them: a setting
-- without a rule here cannot be changed this way.

-- kind: 'integer' or 'decimal' (a JSON number between min and max),
-- 'symbols' (a JSON array of 1 to 100 distinct symbols), or 'fixed' (not
-- changed here; the note says where it is).
create or replace function crypto.setting_rules()
returns table (key text, kind text, min_value numeric, max_value numeric, note text)
language sql immutable
as $$
    select r.key, r.kind, r.min_value, r.max_value, r.note
    from (values
        ('environment', 'fixed', null, null, 'set by ENV when migrating'),
        ('clock.offset_seconds', 'fixed', null, null, 'use oxp clock set / oxp clock reset'),
        ('ledger.dates_follow_ids', 'fixed', null, null, 'false once oxp clock set or reset moved the clock'),
        ('points.per_win', 'integer', 1, 1000000, null),
        ('leaderboard.min_decided', 'integer', 1, 1000, 'decided predictions before an accuracy counts'),
        ('predictions.base_limit', 'integer', 1, 100, null),
        -- 0 turns the reward off; the cap of 7 unlocks is the SPEC's default, not a bound.
        ('ads.max_slot_unlocks', 'integer', 0, 100, '0 turns slot ads off'),
        ('ads.max_point_rewards', 'integer', 0, 100, '0 turns point ads off'),
        ('ads.max_impressions', 'integer', 1, 1000, null),
        -- A transaction id and an impression pay once however late they
        -- come; the age is a second fence, not the replay guard.
        ('ads.ssv_max_age_seconds', 'integer', 60, 604800, null),
        -- A share, not a percentage: 0.0001 is 0.01 %. Zero would make an
        -- unchanged close a win for UP; more than 1 % is not a small move.
        ('settlement.threshold', 'decimal', 0, 0.01, 'a share: 0.0001 is 0.01 %'),
        ('eod.fetch_delay_minutes', 'integer', 0, 1440, null),
        -- During an outage an operator may move the VOID deadline.
        ('eod.void_deadline_minutes', 'integer', 0, 10080, 'before the next session''s cutoff'),
        ('eod.retry_max_seconds', 'integer', 30, 3600, null),
        -- Above the longest job (a full backup, a vendor call with its
        -- timeouts): a live worker's job taken again would run twice.
        ('jobs.lease_seconds', 'integer', 1, 86400, 'longer than any job runs'),
        ('backups.late_full_days', 'integer', 1, 60, null),
        ('backups.late_any_days', 'integer', 1, 60, null),
        ('alerts.http_min_requests', 'integer', 1, 1000000, null),
        ('rewards.vendor_failure_rate', 'decimal', 0, 1, 'a share of vendor calls the simulated vendor refuses'),
        ('ratelimit.ip_per_minute', 'integer', 1, 1000000, null),
        ('ratelimit.predictions_per_minute', 'integer', 1, 10000, null),
        ('ratelimit.predictions_per_hour', 'integer', 1, 100000, null),
        ('ratelimit.point_reads_per_minute', 'integer', 1, 10000, null),
        ('ratelimit.lease_share', 'decimal', 0, 0.5, 'leases granted from then on; held ones run out with their window'),
        ('ratelimit.lease_max', 'integer', 0, 100000, 'leases granted from then on; held ones run out with their window'),
        ('auth.refresh_ttl_days', 'integer', 1, 3650, null),
        ('auth.oauth_state_minutes', 'integer', 1, 60, null),
        ('auth.refresh_family_days', 'integer', 1, 3650, null),
        ('auth.admin_family_hours', 'integer', 1, 168, null),
        ('auth.login_max_failures', 'integer', 1, 1000, null),
        ('auth.login_window_minutes', 'integer', 1, 1440, null),
        ('auth.mfa_max_failures', 'integer', 1, 100, null),
        ('auth.mfa_window_minutes', 'integer', 1, 1440, null),
        ('auth.mfa_lockout_minutes', 'integer', 1, 1440, null),
        ('auth.email_verify_hours', 'integer', 1, 720, null),
        ('retention.expired_days', 'integer', 1, 3650, null),
        -- Whole partitions go: eod_fetch_logs by month, rate_limits by day (2 hours are read).
        ('retention.eod_fetch_logs_days', 'integer', 31, 36500, 'old months go to the archive at the next daily job'),
        ('retention.rate_limits_days', 'integer', 1, 30, null),
        ('retention.ledger_hot_months', 'integer', 1, 1200, 'moved, never dropped: only where the tablespace oxp_cold exists'),
        ('calendar.cutoff_minutes', 'integer', 1, 120, 'applies from the next oxp calendar sync'),
        -- After New York's latest close (06:00 KST in winter), before the earliest cutoff.
        ('schedule.open_hour_kst', 'integer', 6, 21, null),
        ('universe.default', 'symbols', 1, 100, 'symbols, comma-separated or a JSON array')
    ) as r (key, kind, min_value, max_value, note)
$$;

-- Reading the rules is for the operator, admins and the auditor.
grant execute on function crypto.setting_rules() to oxp_service, app_admin, auditor;

-- The rule as a person reads it: "integer 1 to 100".
create or replace function crypto.setting_rule_text(p_key text) returns text
language sql immutable
set search_path = crypto, pg_temp
as $$
    select case r.kind
        when 'fixed' then 'not set here: ' || r.note
        when 'symbols' then format('%s to %s symbols', r.min_value, r.max_value)
        when 'decimal' then
            format('a number %s %s up to %s', case when r.key = 'settlement.threshold' then 'above' else 'from' end,
                r.min_value, r.max_value)
        else format('a whole number from %s to %s', r.min_value, r.max_value)
    end
    || case when r.note is not null and r.kind <> 'fixed' then ' (' || r.note || ')' else '' end
    from crypto.setting_rules() as r where r.key = p_key
$$;

grant execute on function crypto.setting_rule_text(text) to oxp_service, app_admin, auditor;

-- Every setting with its value, rule and last change, for `oxp settings show`.
create or replace function crypto.settings_list() returns jsonb
language sql stable
set search_path = crypto, pg_temp
as $$
    select coalesce(jsonb_agg(jsonb_build_object(
        'key', s.key, 'value', s.value, 'description', s.description,
        'rule', coalesce(crypto.setting_rule_text(s.key), 'not set here: no rule'),
        'updated_at', crypto.kst(s.updated_at)
    ) order by s.key), '[]')
    from crypto.settings as s
$$;

grant execute on function crypto.settings_list() to oxp_service, auditor;

-- Validates VALUE (text, as typed) against KEY's rule, stores it as JSON,
-- and audits the old and new values. Setting the current value again
-- changes nothing and writes no audit row.
create or replace function crypto.setting_set(p_key text, p_value text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_key text := lower(btrim(p_key));
    v_text text := btrim(p_value);
    v_rule record;
    v_old jsonb;
    v_new jsonb;
    v_number numeric;
    v_symbols text[];
begin
    select s.value into v_old from crypto.settings as s where s.key = v_key for update;
    if not found then
        raise exception using errcode = 'OX120', message = 'UNKNOWN_SETTING',
            detail = format('No setting %s (oxp settings show lists them)', left(p_key, 100));
    end if;
    select r.* into v_rule from crypto.setting_rules() as r where r.key = v_key;
    if v_rule.kind is null or v_rule.kind = 'fixed' then
        raise exception using errcode = 'OX121', message = 'SETTING_READ_ONLY',
            detail = format('%s is not changed with settings set: %s', v_key,
                coalesce(v_rule.note, 'it has no validation rule'));
    end if;
    if v_text is null or v_text = '' then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('%s needs a value: %s', v_key, crypto.setting_rule_text(v_key));
    end if;

    if v_rule.kind in ('integer', 'decimal') then
        if (v_rule.kind = 'integer' and v_text !~ '^-?[0-9]{1,18}$')
            or v_text !~ '^-?[0-9]{1,18}(\.[0-9]{1,18})?$' then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = format('%s must be %s, not %s', v_key, crypto.setting_rule_text(v_key), left(v_text, 40));
        end if;
        v_number := v_text::numeric;
        if v_number < v_rule.min_value or v_number > v_rule.max_value
            or (v_key = 'settlement.threshold' and v_number = 0) then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = format('%s must be %s, not %s', v_key, crypto.setting_rule_text(v_key), v_text);
        end if;
        v_new := to_jsonb(v_number);
    else
        -- A JSON array, or symbols separated by commas or spaces.
        if left(v_text, 1) = '[' then
            begin
                select array_agg(upper(btrim(e))) into v_symbols from jsonb_array_elements_text(v_text::jsonb) as e;
            exception when others then
                raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                    detail = format('%s: not a JSON array of symbols: %s', v_key, left(v_text, 80));
            end;
        else
            v_symbols := array(
                select upper(s) from regexp_split_to_table(v_text, '[\s,]+') as s where s <> ''
            );
        end if;
        if coalesce(cardinality(v_symbols), 0) not between v_rule.min_value and v_rule.max_value then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = format('%s must be %s', v_key, crypto.setting_rule_text(v_key));
        end if;
        if exists (select from unnest(v_symbols) as s where s is null or s !~ '^[A-Z][A-Z0-9.\-]{0,9}$') then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = format('%s: not a symbol: %s', v_key, (
                    select string_agg(coalesce(s, 'null'), ', ') from unnest(v_symbols) as s
                    where s is null or s !~ '^[A-Z][A-Z0-9.\-]{0,9}$'
                ));
        end if;
        if (select count(distinct s) from unnest(v_symbols) as s) <> cardinality(v_symbols) then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = format('%s: a symbol is listed twice', v_key);
        end if;
        -- The same check as a day's universe (crypto.set_universe): the
        -- default becomes a session's list when no other is set.
        if cardinality(crypto.unknown_symbols(v_symbols)) > 0 then
            raise exception using errcode = 'OX130', message = 'UNKNOWN_SYMBOL',
                detail = format('%s: unknown ticker(s) %s; set them on a day with oxp universe set --allow-unknown first',
                    v_key, array_to_string(crypto.unknown_symbols(v_symbols), ', '));
        end if;
        v_new := to_jsonb(v_symbols);
    end if;

    if v_new = v_old then
        return jsonb_build_object('key', v_key, 'value', v_new, 'previous', v_old, 'changed', false);
    end if;
    update crypto.settings as s set value = v_new, updated_at = crypto.now() where s.key = v_key;
    perform crypto.audit(crypto.current_actor(), 'setting.set', v_key,
        jsonb_build_object('previous', v_old, 'value', v_new));
    return jsonb_build_object('key', v_key, 'value', v_new, 'previous', v_old, 'changed', true);
end
$$;

grant execute on function crypto.setting_set(text, text) to oxp_operator, app_admin;

comment on function crypto.setting_rules() is
'What each setting accepts: kind (integer, decimal, symbols, fixed), bounds and a note.';
comment on function crypto.settings_list() is
'Every setting with its value, description, rule and last change (KST): oxp settings show.';
comment on function crypto.setting_set(text, text) is
'Changes a setting after checking its rule; audited as setting.set with the old and new value.';
