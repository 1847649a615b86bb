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

grant execute on function api.admin_dashboard() to app_admin;

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

grant execute on function crypto.audit_search(text, text, text, timestamptz, timestamptz, integer, bigint)
to oxp_operator, auditor;

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

grant execute on function api.admin_audit(text, text, text, timestamptz, timestamptz, integer, bigint) to app_admin;

-- Add a SKU, restock, reprice, disable or enable: what is not given stays.

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

grant execute on function api.admin_resolve_redemption(bigint, text, text, text) to app_admin;

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
    perform crypto.require_idempotency_key(p_key, 'An adjustment', 100);
    if p_user is not null then
        select u.email into v_email from crypto.users as u where u.id = p_user;
        if v_email is null then
            raise exception using errcode = 'OX004', message = 'NOT_FOUND', detail = format('No user %s', p_user);
        end if;
    end if;
    -- Each admin's keys are their own (two admins may pick the same one).
    return crypto.adjust_points(v_email, p_amount, p_reason, 'admin:' || crypto.auth_uid() || ':' || p_key);
end
$$;

grant execute on function api.admin_adjust_points(text, uuid, bigint, text, text) to app_admin;

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

grant execute on function crypto.set_user_disabled(uuid, boolean, text) to oxp_operator;

create or replace function api.admin_user_disabled(p_user uuid, p_disabled boolean, p_reason text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.set_user_disabled(p_user, p_disabled, p_reason);
end
$$;

grant execute on function api.admin_user_disabled(uuid, boolean, text) to app_admin;

-- Ask the worker for a finished day's closes now (a new fetch job, beside

-- the schedule's, which may be dead or backing off).

-- Closes an admin has from elsewhere (a price outage): all rows or none,

-- each refused row named as a file's line would be; audited.

-- Recent runs of every scheduled job, failures first.

-- Run one scheduled job now, by the name its pg_cron line has.

-- Several settings at once, all or none: {"key": value, ...}, each by its rule.

-- Ads: create one, or change its title, reward or whether it is shown.

-- Business metrics (the rollup's rows) for the admin's reports.
