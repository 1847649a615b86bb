-- The admin API's operations of the game (issue 11, item 1): universe,
-- inventory, prices, settlement, checks, batches, settings, ads and
-- metrics. Admins only (crypto.require_admin); each calls the crypto
-- function the CLI calls, audited under the admin's id.

create or replace function api.admin_universe_upsert(p_day date, p_symbols text[]) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return json_build_object('trading_day', p_day, 'symbols', crypto.set_universe(p_day, p_symbols));
end
$$;

grant execute on function api.admin_universe_upsert(date, text[]) to app_admin;

create or replace function api.admin_reward_inventory(
    p_sku text, p_name text, p_cost bigint, p_stock integer, p_active boolean
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_reward crypto.rewards_inventory;
begin
    perform crypto.require_admin();
    select r.* into v_reward from crypto.rewards_inventory as r where r.sku = p_sku;
    return crypto.upsert_reward(p_sku, coalesce(p_name, v_reward.name), coalesce(p_cost, v_reward.cost_points),
        coalesce(p_stock, v_reward.stock), coalesce(p_active, v_reward.active, true));
end
$$;

grant execute on function api.admin_reward_inventory(text, text, bigint, integer, boolean) to app_admin;

create or replace function api.admin_settlement_manual(p_day date, p_void_missing boolean) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    perform crypto.audit(crypto.current_actor(), 'settlement.manual', crypto.iso_day(p_day),
        jsonb_build_object('void_missing', coalesce(p_void_missing, false)));
    return crypto.settle_session(p_day, coalesce(p_void_missing, false));
end
$$;

grant execute on function api.admin_settlement_manual(date, boolean) to app_admin;

create or replace function api.admin_eod_trigger(p_day date) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_plan jsonb;
    v_job bigint;
begin
    perform crypto.require_admin();
    v_plan := crypto.eod_fetch_plan(p_day);
    if not (v_plan ->> 'final')::boolean then
        raise exception using errcode = 'OX110', message = 'MARKET_NOT_CLOSED',
            detail = format('The closes of %s are not final before the New York close', p_day);
    end if;
    v_job := crypto.enqueue_job('eod.fetch', jsonb_build_object('trading_day', p_day),
        format('%s:admin:%s', crypto.eod_fetch_key(p_day), (extract(epoch from clock_timestamp()) * 1000)::bigint), 8);
    perform crypto.audit(crypto.current_actor(), 'eod.trigger', crypto.iso_day(p_day), jsonb_build_object('job', v_job));
    return jsonb_build_object('trading_day', p_day, 'job', v_job, 'missing', v_plan -> 'missing');
end
$$;

grant execute on function api.admin_eod_trigger(date) to app_admin;

create or replace function api.admin_load_eod_prices(p_closes jsonb) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_rows jsonb;
    v_result jsonb;
begin
    perform crypto.require_admin();
    if jsonb_typeof(p_closes) is distinct from 'array' or jsonb_array_length(p_closes) not between 1 and 5000 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'closes is a list of 1 to 5000 {trading_day, symbol, close}';
    end if;
    -- Numbered from 1, as the refusals name them.
    select jsonb_agg(r.value || jsonb_build_object('line', r.n) order by r.n) into v_rows
    from jsonb_array_elements(p_closes) with ordinality as r (value, n);
    -- The source is public (the settlement view shows it): it says an admin
    -- typed the closes; which admin is in the audit row below, not here.
    v_result := crypto.load_eod_prices(v_rows, 'admin');
    perform crypto.audit(crypto.current_actor(), 'eod.prices_loaded',
        (select string_agg(distinct r ->> 'trading_day', ',') from jsonb_array_elements(p_closes) as r), v_result);
    return v_result;
end
$$;

grant execute on function api.admin_load_eod_prices(jsonb) to app_admin;

create or replace function api.admin_integrity_check() returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_count integer;
begin
    perform crypto.require_admin();
    v_count := crypto.run_integrity_check();
    return jsonb_build_object(
        'violations', v_count,
        -- What that run found (its first 100), not a second, full read:
        -- its own row (this transaction's), not a cron run's meanwhile.
        'items', (
            select coalesce(h.details -> 'first', '[]') from crypto.system_health as h
            where h.check_name = 'integrity' and h.xmin = pg_current_xact_id()::xid
            order by h.id desc limit 1
        ),
        'audit_chain', crypto.audit_verify()
    );
end
$$;

grant execute on function api.admin_integrity_check() to app_admin;

create or replace function api.admin_batches(p_limit integer default 50) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    perform crypto.page_limit(p_limit);
    return (select coalesce(json_agg(json_build_object(
            'id', r.id, 'job', r.job, 'status', r.status, 'started_at', crypto.kst(r.started_at),
            'finished_at', crypto.kst(r.finished_at), 'rows', r.rows, 'error', r.error)
            order by r.status <> 'failed', r.started_at desc), '[]')
        from (select j.* from crypto.job_runs as j order by j.started_at desc limit p_limit) as r);
end
$$;

grant execute on function api.admin_batches(integer) to app_admin;

create or replace function api.admin_batch_run(p_job text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_result jsonb;
begin
    perform crypto.require_admin();
    v_result := case p_job
        when 'schedule-tick' then crypto.schedule_tick()
        when 'integrity-check' then to_jsonb(crypto.run_integrity_check())
        when 'metrics-rollup' then to_jsonb(crypto.rollup_metrics())
        when 'evaluate-alerts' then to_jsonb(crypto.evaluate_alerts())
        when 'calendar-runway' then to_jsonb(crypto.check_calendar_runway())
        when 'audit-seal' then to_jsonb(crypto.audit_seal())
        when 'expire-auth' then to_jsonb(crypto.expire_auth_rows())
    end;
    if v_result is null then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('No job %s; one of schedule-tick, integrity-check, metrics-rollup, evaluate-alerts, '
                'calendar-runway, audit-seal, expire-auth', left(coalesce(p_job, ''), 40));
    end if;
    perform crypto.audit(crypto.current_actor(), 'batch.run', p_job, jsonb_build_object('result', v_result));
    return jsonb_build_object('job', p_job, 'result', v_result);
end
$$;

grant execute on function api.admin_batch_run(text) to app_admin;

create or replace function api.admin_settings() returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.settings_list();
end
$$;

grant execute on function api.admin_settings() to app_admin;

create or replace function api.admin_setting_set(p_key text, p_value text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.setting_set(p_key, p_value);
end
$$;

grant execute on function api.admin_setting_set(text, text) to app_admin;

create or replace function api.admin_settings_patch(p_changes jsonb) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_key text;
    v_value jsonb;
begin
    perform crypto.require_admin();
    if jsonb_typeof(p_changes) is distinct from 'object' or p_changes = '{}' then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Send an object of settings to change: {"key": value, ...}';
    end if;
    for v_key, v_value in select e.key, e.value from jsonb_each(p_changes) as e order by e.key loop
        perform crypto.setting_set(v_key, v_value #>> '{}');
    end loop;
    return crypto.settings_list();
end
$$;

grant execute on function api.admin_settings_patch(jsonb) to app_admin;

create or replace function api.admin_ad_upsert(
    p_id text, p_title text, p_kind text, p_points bigint, p_active boolean
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_ad crypto.ads;
    v_old crypto.ads;
begin
    perform crypto.require_admin();
    if p_id is null or p_id !~ '^[a-z0-9\-]{1,40}$' then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'An ad id is 1 to 40 lowercase letters, digits or -';
    end if;
    select a.* into v_old from crypto.ads as a where a.id = p_id for update;
    if v_old.id is null and (coalesce(btrim(p_title), '') = '' or p_kind is null) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A new ad needs a title and a reward_kind (SLOT or POINTS)';
    end if;
    if coalesce(p_kind, v_old.reward_kind::text) not in ('SLOT', 'POINTS')
        or (coalesce(p_kind, v_old.reward_kind::text) = 'SLOT' and coalesce(p_points, 0) <> 0)
        or (coalesce(p_kind, v_old.reward_kind::text) = 'POINTS'
            and coalesce(p_points, v_old.reward_points, 0) not between 1 and 1000) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'reward_kind is SLOT (no points) or POINTS (1 to 1000 points)';
    end if;
    insert into crypto.ads as a (id, title, reward_kind, reward_points, active)
    values (p_id, coalesce(btrim(p_title), v_old.title), coalesce(p_kind, v_old.reward_kind::text)::crypto.ad_reward_kind,
        case when coalesce(p_kind, v_old.reward_kind::text) = 'SLOT' then 0 else coalesce(p_points, v_old.reward_points) end,
        coalesce(p_active, v_old.active, true))
    on conflict (id) do update set title = excluded.title, reward_kind = excluded.reward_kind,
        reward_points = excluded.reward_points, active = excluded.active
    returning a.* into v_ad;
    perform crypto.audit(crypto.current_actor(), 'ad.upsert', p_id, to_jsonb(v_ad));
    return to_jsonb(v_ad);
end
$$;

grant execute on function api.admin_ad_upsert(text, text, text, bigint, boolean) to app_admin;

create or replace function api.admin_metrics(p_from date, p_to date) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.daily_metrics_range(p_from, p_to);
end
$$;

grant execute on function api.admin_metrics(date, date) to app_admin;
