-- The admin HTTP API (issue 11, item 1): what /admin/* calls, as app_admin.
-- Each function checks the caller is an admin (crypto.require_admin), then
-- calls the same crypto function the CLI calls, so both do one thing one
-- way; the audit row names the admin (crypto.current_actor: 'user:<id>').

-- What an operator looks at first, from small reads only (it answers in
-- milliseconds on a day of a million predictions, bench/metrics): the
-- day's figures come from its metrics row (the rollup, every 10 minutes,
-- `as_of` says when), each job's last run by a skip scan of its index, the
-- queue by the partial index of unfinished jobs.
create or replace function api.admin_dashboard() returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_session crypto.session_control;
    v_metrics crypto.daily_metrics;
begin
    perform crypto.require_admin();
    select s.* into v_session from crypto.session_control as s order by s.trading_day desc limit 1;
    select m.* into v_metrics from crypto.daily_metrics as m where m.trading_day = v_session.trading_day;
    return json_build_object(
        'now', crypto.kst(crypto.now()),
        'session', case when v_session.trading_day is not null then json_build_object(
            'trading_day', v_session.trading_day, 'phase', v_session.phase,
            'active_users', v_metrics.active_users, 'participants', v_metrics.participants,
            'predictions', v_metrics.predictions, 'as_of', crypto.kst(v_metrics.computed_at)
        ) end,
        'points', case when v_metrics.trading_day is not null then json_build_object(
            'issued', v_metrics.points_settlement + v_metrics.points_ads + v_metrics.points_adjustments,
            'redeemed', v_metrics.points_redeemed - v_metrics.points_refunded,
            'held_by_players', v_metrics.points_outstanding,
            'as_of', crypto.kst(v_metrics.computed_at)
        ) end,
        'alerts', crypto.alerts_list(false),
        'last_runs', (
            with recursive jobs (job) as (
                (select r.job from crypto.job_runs as r order by r.job limit 1)
                union all
                select (select r.job from crypto.job_runs as r where r.job > j.job order by r.job limit 1)
                from jobs as j where j.job is not null
            )
            select coalesce(json_agg(json_build_object(
                'job', l.job, 'status', l.status, 'started_at', crypto.kst(l.started_at),
                'finished_at', crypto.kst(l.finished_at), 'error', l.error) order by l.job), '[]')
            from jobs as j
            cross join lateral (
                select r.* from crypto.job_runs as r where r.job = j.job order by r.started_at desc limit 1
            ) as l
        ),
        'queue', (select coalesce(json_object_agg(q.status, q.n), '{}')
            from (select j.status, count(*) as n from crypto.jobs as j
                where j.status in ('queued', 'running', 'dead') group by j.status) as q),
        'worker_last_seen', (select crypto.kst(max(h.seen_at)) from crypto.worker_heartbeats as h)
    );
end
$$;

-- The audit log, newest first, in cursor pages (the ledger's shape),
-- filtered by action, actor, subject and time: GET /admin/audit and
-- oxp audit search.
create or replace function crypto.audit_search(
    p_action text default null, p_actor text default null, p_subject text default null,
    p_from timestamptz default null, p_to timestamptz default null,
    p_limit integer default 50, p_cursor bigint default null
) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_items json;
    v_last bigint;
    v_count integer;
begin
    perform crypto.page_limit(p_limit);
    if p_from > p_to then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED', detail = 'from must not be after to';
    end if;
    select json_agg(json_build_object(
            'id', l.id, 'at', crypto.kst(l.at), 'actor', l.actor, 'action', l.action,
            'subject', l.subject, 'details', l.details) order by l.id desc),
        min(l.id), count(*)
    into v_items, v_last, v_count
    from (
        select a.* from crypto.audit_logs as a
        where (p_cursor is null or a.id < p_cursor)
            and (p_action is null or a.action = p_action)
            and (p_actor is null or a.actor = p_actor)
            and (p_subject is null or a.subject = p_subject)
            and (p_from is null or a.at >= p_from)
            and (p_to is null or a.at < p_to)
        order by a.id desc
        limit p_limit
    ) as l;
    return crypto.page(v_items, v_last, v_count, p_limit);
end
$$;

create or replace function api.admin_audit(
    p_action text default null, p_actor text default null, p_subject text default null,
    p_from timestamptz default null, p_to timestamptz default null,
    p_limit integer default 50, p_cursor bigint default null
) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.audit_search(p_action, p_actor, p_subject, p_from, p_to, p_limit, p_cursor);
end
$$;

create or replace function api.admin_universe_upsert(p_day date, p_symbols text[]) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return json_build_object('trading_day', p_day, 'symbols', crypto.set_universe(p_day, p_symbols));
end
$$;

-- Add a SKU, restock, reprice, disable or enable: what is not given stays.
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

-- The manual path when the vendor answered out of band: an UNKNOWN
-- redemption becomes ISSUED (with the vendor's reference) or FAILED
-- (refunded once, as the worker does), with the admin's reason.
create or replace function api.admin_resolve_redemption(
    p_id bigint, p_status text, p_vendor_ref text, p_reason text
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    if coalesce(length(btrim(p_reason)), 0) not between 3 and 500 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A resolution needs a reason of 3 to 500 characters';
    end if;
    return crypto.resolve_redemption(p_id, p_status, p_vendor_ref, btrim(p_reason));
end
$$;

-- By email or by id; the key is the request's Idempotency-Key.
create or replace function api.admin_adjust_points(
    p_email text, p_user uuid, p_amount bigint, p_reason text, p_key text
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_email text := p_email;
begin
    perform crypto.require_admin();
    if (p_email is null) = (p_user is null) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Give either email or user_id';
    end if;
    if p_key is null or length(p_key) not between 1 and 150 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'An adjustment needs an Idempotency-Key header of 1 to 150 characters';
    end if;
    if p_user is not null then
        select u.email into v_email from crypto.users as u where u.id = p_user;
        if v_email is null then
            raise exception using errcode = 'OX004', message = 'NOT_FOUND', detail = format('No user %s', p_user);
        end if;
    end if;
    return crypto.adjust_points(v_email, p_amount, p_reason, 'admin:' || p_key);
end
$$;

-- A disabled user's every request is refused at once (crypto.require_user
-- reads disabled_at), their refresh families end, and predictions,
-- redemptions and ad rewards are refused; enabling lets them sign in again.
create or replace function crypto.set_user_disabled(p_user uuid, p_disabled boolean, p_reason text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
begin
    if coalesce(length(btrim(p_reason)), 0) not between 3 and 500 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Disabling or enabling a user needs a reason of 3 to 500 characters';
    end if;
    if p_user = crypto.auth_uid() then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'An admin cannot disable or enable themselves';
    end if;
    update crypto.users as u
    set disabled_at = case when p_disabled then coalesce(u.disabled_at, crypto.now()) end
    where u.id = p_user
    returning u.* into v_user;
    if v_user.id is null then
        raise exception using errcode = 'OX004', message = 'NOT_FOUND', detail = format('No user %s', p_user);
    end if;
    if p_disabled then
        perform crypto.end_sessions(p_user);
    end if;
    perform crypto.audit(crypto.current_actor(), case when p_disabled then 'user.disabled' else 'user.enabled' end,
        p_user::text, jsonb_build_object('reason', btrim(p_reason)));
    return jsonb_build_object('id', v_user.id, 'disabled_at', crypto.kst(v_user.disabled_at));
end
$$;

create or replace function api.admin_user_disabled(p_user uuid, p_disabled boolean, p_reason text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.set_user_disabled(p_user, p_disabled, p_reason);
end
$$;

create or replace function api.admin_settlement_manual(p_day date, p_void_missing boolean) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    perform crypto.audit(crypto.current_actor(), 'settlement.manual', p_day::text,
        jsonb_build_object('void_missing', coalesce(p_void_missing, false)));
    return crypto.settle_session(p_day, coalesce(p_void_missing, false));
end
$$;

-- Ask the worker for a finished day's closes now (a new fetch job, beside
-- the schedule's, which may be dead or backing off).
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
        format('eod.fetch:%s:admin:%s', p_day, (extract(epoch from clock_timestamp()) * 1000)::bigint), 8);
    perform crypto.audit(crypto.current_actor(), 'eod.trigger', p_day::text, jsonb_build_object('job', v_job));
    return jsonb_build_object('trading_day', p_day, 'job', v_job, 'missing', v_plan -> 'missing');
end
$$;

-- Closes an admin has from elsewhere (a price outage): all rows or none,
-- each refused row named as a file's line would be; audited.
create or replace function api.admin_load_eod_prices(p_closes jsonb) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_admin();
    v_rows jsonb;
    v_result jsonb;
begin
    if jsonb_typeof(p_closes) is distinct from 'array' or jsonb_array_length(p_closes) not between 1 and 5000 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'closes is a list of 1 to 5000 {trading_day, symbol, close}';
    end if;
    -- Numbered from 1, as the refusals name them.
    select jsonb_agg(r.value || jsonb_build_object('line', r.n) order by r.n) into v_rows
    from jsonb_array_elements(p_closes) with ordinality as r (value, n);
    v_result := crypto.load_eod_prices(v_rows, 'admin:' || v_uid);
    perform crypto.audit(crypto.current_actor(), 'eod.prices_loaded',
        (select string_agg(distinct r ->> 'trading_day', ',') from jsonb_array_elements(p_closes) as r), v_result);
    return v_result;
end
$$;

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
        'items', (select coalesce(jsonb_agg(to_jsonb(v)), '[]') from crypto.integrity_violations() as v),
        'audit_chain', crypto.audit_verify()
    );
end
$$;

-- Recent runs of every scheduled job, failures first.
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

-- Run one scheduled job now, by the name its pg_cron line has.
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

create or replace function api.admin_settings() returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.settings_list();
end
$$;

create or replace function api.admin_setting_set(p_key text, p_value text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.setting_set(p_key, p_value);
end
$$;

-- Several settings at once, all or none: {"key": value, ...}, each by its rule.
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

-- Ads: create one, or change its title, reward or whether it is shown.
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

-- Business metrics (the rollup's rows) for the admin's reports.
create or replace function api.admin_metrics(p_from date, p_to date) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.daily_metrics_range(p_from, p_to);
end
$$;

grant execute on function api.admin_dashboard() to app_admin;
grant execute on function api.admin_audit(text, text, text, timestamptz, timestamptz, integer, bigint) to app_admin;
grant execute on function crypto.audit_search(text, text, text, timestamptz, timestamptz, integer, bigint)
to oxp_service, auditor;
grant execute on function api.admin_universe_upsert(date, text[]) to app_admin;
grant execute on function api.admin_reward_inventory(text, text, bigint, integer, boolean) to app_admin;
grant execute on function api.admin_adjust_points(text, uuid, bigint, text, text) to app_admin;
grant execute on function api.admin_resolve_redemption(bigint, text, text, text) to app_admin;
grant execute on function crypto.set_user_disabled(uuid, boolean, text) to oxp_service;
grant execute on function api.admin_user_disabled(uuid, boolean, text) to app_admin;
grant execute on function api.admin_settlement_manual(date, boolean) to app_admin;
grant execute on function api.admin_eod_trigger(date) to app_admin;
grant execute on function api.admin_load_eod_prices(jsonb) to app_admin;
grant execute on function api.admin_integrity_check() to app_admin;
grant execute on function api.admin_batches(integer) to app_admin;
grant execute on function api.admin_batch_run(text) to app_admin;
grant execute on function api.admin_settings() to app_admin;
grant execute on function api.admin_setting_set(text, text) to app_admin;
grant execute on function api.admin_settings_patch(jsonb) to app_admin;
grant execute on function api.admin_ad_upsert(text, text, text, bigint, boolean) to app_admin;
grant execute on function api.admin_metrics(date, date) to app_admin;
