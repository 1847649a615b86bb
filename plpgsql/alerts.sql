-- Alerts: the conditions a person must hear about. A rule opens an alert
-- (crypto.alert_open), sees it again while it lasts (one row, last_seen
-- moves), escalates it (warning to critical), and clears it when the
-- condition is gone (crypto.alert_clear); a person may resolve it with a
-- reason. Each opening, escalation and resolution becomes one
-- alert.deliver job (its dedupe key is the transition), which the worker
-- posts to every ALERT_WEBHOOK_URL.

create or replace function crypto.alert_notify(p_alert crypto.alerts, p_transition text) returns void
language sql volatile
set search_path = crypto, pg_temp
as $$
    select crypto.enqueue_job(
        'alert.deliver',
        jsonb_build_object('alert_id', p_alert.id, 'transition', p_transition),
        format('alert:%s:%s', p_alert.id, p_transition),
        20
    )
$$;

create or replace function crypto.alert_open(
    p_rule text, p_subject text, p_severity crypto.alert_severity, p_details jsonb
) returns crypto.alerts
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_alert crypto.alerts;
    v_was crypto.alert_severity;
begin
    select a.severity into v_was from crypto.alerts as a
    where a.rule = p_rule and a.subject = coalesce(p_subject, '') and a.resolved_at is null
    for update;
    insert into crypto.alerts as a (rule, subject, severity, first_seen, last_seen, details)
    values (p_rule, coalesce(p_subject, ''), p_severity, crypto.now(), crypto.now(), coalesce(p_details, '{}'))
    on conflict (rule, subject) where resolved_at is null do update
    set last_seen = greatest(a.last_seen, excluded.last_seen),
        severity = greatest(a.severity, excluded.severity),
        details = excluded.details
    returning a.* into v_alert;
    if v_was is null then
        perform crypto.alert_notify(v_alert, 'opened');
    elsif v_alert.severity > v_was then
        perform crypto.alert_notify(v_alert, 'escalated');
    end if;
    return v_alert;
end
$$;

-- The condition is gone: every open alert of the rule (and subject, when
-- given) is resolved as 'cleared'. Returns how many.
create or replace function crypto.alert_clear(p_rule text, p_subject text default null) returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_alert crypto.alerts;
    v_count integer := 0;
begin
    for v_alert in
        update crypto.alerts as a
        set resolved_at = crypto.now(), resolution = 'cleared', resolved_by = 'rule'
        where a.rule = p_rule and a.resolved_at is null and (p_subject is null or a.subject = p_subject)
        returning a.*
    loop
        perform crypto.alert_notify(v_alert, 'resolved');
        v_count := v_count + 1;
    end loop;
    return v_count;
end
$$;

-- A person resolves an alert, with a reason; audited. If the condition
-- still holds, the next evaluation opens a new alert.
create or replace function crypto.resolve_alert(p_id bigint, p_reason text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_alert crypto.alerts;
begin
    if coalesce(length(btrim(p_reason)), 0) not between 3 and 500 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A resolution needs a reason of 3 to 500 characters';
    end if;
    select a.* into v_alert from crypto.alerts as a where a.id = p_id for update;
    if v_alert.id is null then
        raise exception using errcode = 'OX004', message = 'NOT_FOUND', detail = format('No alert %s', p_id);
    end if;
    if v_alert.resolved_at is not null then
        raise exception using errcode = 'OX131', message = 'ALERT_RESOLVED',
            detail = format('Alert %s was resolved at %s (%s)', p_id, crypto.kst(v_alert.resolved_at), v_alert.resolution);
    end if;
    update crypto.alerts as a
    set resolved_at = crypto.now(), resolution = btrim(p_reason), resolved_by = crypto.current_actor()
    where a.id = p_id
    returning a.* into v_alert;
    perform crypto.audit(crypto.current_actor(), 'alert.resolved', p_id::text,
        jsonb_build_object('rule', v_alert.rule, 'subject', v_alert.subject, 'reason', btrim(p_reason)));
    perform crypto.alert_notify(v_alert, 'resolved');
    return crypto.alert_json(v_alert);
end
$$;

grant execute on function crypto.resolve_alert(bigint, text) to oxp_operator;

create or replace function crypto.alert_json(p_alert crypto.alerts) returns jsonb
language sql stable
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'id', p_alert.id, 'rule', p_alert.rule, 'subject', p_alert.subject, 'severity', p_alert.severity,
        'first_seen', crypto.kst(p_alert.first_seen), 'last_seen', crypto.kst(p_alert.last_seen),
        'resolved_at', crypto.kst(p_alert.resolved_at), 'resolution', p_alert.resolution,
        'resolved_by', p_alert.resolved_by, 'details', p_alert.details
    )
$$;

-- Open alerts, most severe and newest first; with p_all the resolved ones
-- of the last 7 days too.
create or replace function crypto.alerts_list(p_all boolean default false) returns jsonb
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select coalesce(jsonb_agg(crypto.alert_json(a) order by a.resolved_at is not null, a.severity desc, a.first_seen desc), '[]')
    from crypto.alerts as a
    where a.resolved_at is null or (p_all and a.resolved_at > crypto.now() - interval '7 days')
$$;

grant execute on function crypto.alerts_list(boolean) to oxp_operator, auditor;

-- What the worker needs to post one transition: the alert, and which
-- webhooks (by URL hash) already have it.
create or replace function crypto.alert_delivery(p_alert bigint, p_transition text) returns jsonb
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'alert', crypto.alert_json(a),
        'transition', p_transition,
        'delivered', coalesce((
            select jsonb_agg(d.target_hash) from crypto.alert_deliveries as d
            where d.alert_id = a.id and d.transition = p_transition
        ), '[]')
    )
    from crypto.alerts as a where a.id = p_alert
$$;

grant execute on function crypto.alert_delivery(bigint, text) to oxp_service;

create or replace function crypto.alert_delivered(p_alert bigint, p_transition text, p_target_hash text) returns void
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    insert into crypto.alert_deliveries (alert_id, transition, target_hash, delivered_at)
    values (p_alert, p_transition, p_target_hash, crypto.now())
    on conflict do nothing
$$;

grant execute on function crypto.alert_delivered(bigint, text, text) to oxp_service;

-- The checks that already write crypto.system_health (the calendar's
-- runway, integrity, a failing price fetch, a VOID at the deadline, a
-- failed tick, an admin's code lockout) become alerts here, one trigger
-- for all of them: an 'alert' row opens or touches one, an 'ok' row clears it.
create or replace function crypto.tg_system_health__alert() returns trigger
language plpgsql
set search_path = crypto, pg_temp
as $$
declare
    v_subject text := case new.check_name
        when 'eod_fetch' then new.details ->> 'trading_day'
        when 'eod_void' then new.details ->> 'trading_day'
        when 'mfa_lockout' then new.details ->> 'user_id'
        when 'reward_vendor' then new.details ->> 'redemption_id'
        when 'schedule_tick' then crypto.tick_failure_keys(new.details -> 'failed')::text
        else ''
    end;
begin
    if new.status = 'alert' then
        perform crypto.alert_open(new.check_name, v_subject,
            (case when new.check_name in ('eod_void', 'integrity', 'schedule_tick')
                then 'critical' else 'warning' end)::crypto.alert_severity,
            new.details);
    elsif new.status = 'ok' then
        perform crypto.alert_clear(new.check_name, nullif(v_subject, ''));
    end if;
    return null;
end
$$;

drop trigger if exists system_health_alerts on crypto.system_health;
create trigger system_health_alerts after insert on crypto.system_health
for each row execute function crypto.tg_system_health__alert();

-- The rules that watch state, run by pg_cron every minute. Each rule opens
-- what holds and clears what no longer does. Returns the open alerts.
create or replace function crypto.evaluate_alerts() returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_now timestamptz := crypto.now();
    v_row record;
    v_heartbeat timestamptz;
begin
    -- A price fetch alert ends when its day is settled; a failed tick's
    -- when a later tick succeeds.
    for v_row in
        select a.subject from crypto.alerts as a
        join crypto.session_control as s on crypto.iso_day(s.trading_day) = a.subject
        where a.rule = 'eod_fetch' and a.resolved_at is null and s.phase = 'SETTLED'
    loop
        perform crypto.alert_clear('eod_fetch', v_row.subject);
    end loop;
    if (select r.status = 'succeeded' from crypto.job_runs as r
        where r.job = 'schedule_tick' order by r.started_at desc, r.id desc limit 1) then
        perform crypto.alert_clear('schedule_tick');
    end if;
    -- A vendor's silence ends with its answer or an admin's resolve.
    perform crypto.alert_clear('reward_vendor', a.subject)
    from crypto.alerts as a
    where a.rule = 'reward_vendor' and a.resolved_at is null
        and not exists (
            select from crypto.rewards_redemptions as r
            where r.id::text = a.subject and r.status = 'UNKNOWN'
        );

    -- Dead jobs: work that will not happen without a person. A dead alert
    -- delivery is not one of them: its own alert would need delivering
    -- through the same broken webhook (the worker's log says why).
    for v_row in
        select j.id, j.kind, j.last_error, j.attempts, j.payload ->> 'redemption_id' as redemption
        from crypto.jobs as j
        where j.status = 'dead' and j.kind <> 'alert.deliver'
    loop
        -- A vendor call's job is never cancelled alone (crypto.job_cancel):
        -- its redemption is ended instead.
        perform crypto.alert_open('job_dead', v_row.id::text, 'warning', jsonb_build_object(
            'job', v_row.id, 'kind', v_row.kind, 'attempts', v_row.attempts, 'error', v_row.last_error,
            'action', case when v_row.kind = 'reward.issue' then format(
                'oxp jobs retry %s (asks the vendor again), or end redemption %s: oxp rewards resolve %s '
                '--issued REF | --failed with the vendor''s answer (oxp rewards cancel %s if no call left)',
                v_row.id, v_row.redemption, v_row.redemption, v_row.redemption)
                else format('oxp jobs retry %s (or cancel)', v_row.id) end));
    end loop;
    for v_row in
        select a.subject from crypto.alerts as a
        where a.rule = 'job_dead' and a.resolved_at is null
            and not exists (select from crypto.jobs as j where j.id::text = a.subject and j.status = 'dead')
    loop
        perform crypto.alert_clear('job_dead', v_row.subject);
    end loop;

    -- The queue: a due job waiting 5 minutes means no worker takes it.
    select min(j.run_after) as oldest, count(*) as n into v_row
    from crypto.jobs as j where j.status = 'queued' and j.run_after <= v_now;
    if v_row.oldest is not null and v_row.oldest < v_now - interval '5 minutes' then
        perform crypto.alert_open('queue_stale', '', 'warning', jsonb_build_object(
            'due_jobs', v_row.n, 'oldest_due_since', crypto.kst(v_row.oldest)));
    else
        perform crypto.alert_clear('queue_stale');
    end if;

    -- The worker beats at least every 30 s while it waits for work. One
    -- that never started is found by the queue rule above, once work waits.
    select max(h.seen_at) into v_heartbeat from crypto.worker_heartbeats as h;
    if v_heartbeat < v_now - interval '2 minutes' then
        perform crypto.alert_open('worker_silent', '', 'critical', jsonb_build_object(
            'last_heartbeat', crypto.kst(v_heartbeat), 'action', 'start or restart: oxp worker'));
    else
        perform crypto.alert_clear('worker_silent');
    end if;

    -- The API's 5xx rate over the last 5 minutes, once there is enough
    -- traffic to tell (alerts.http_min_requests).
    select coalesce(sum(h.total), 0) as total, coalesce(sum(h.errors), 0) as errors into v_row
    from crypto.http_counts as h where h.minute >= v_now - interval '5 minutes';
    if v_row.total >= crypto.setting_int('alerts.http_min_requests')
        and v_row.errors * 100 > v_row.total then
        perform crypto.alert_open('api_server_errors', '', 'warning', jsonb_build_object(
            'requests', v_row.total, 'errors', v_row.errors, 'window', '5 minutes',
            'action', 'oxp_http_5xx_total on /metrics names the routes; the API log has each error'));
    else
        perform crypto.alert_clear('api_server_errors');
    end if;
    delete from crypto.http_counts as h where h.minute < v_now - interval '1 day';

    -- Participation at the cutoff, against the last 7 trading days.
    perform crypto.check_participation();
    -- Scheduled backups that did not happen (plpgsql/backups.sql).
    perform crypto.check_backup_late();
    return (select count(*)::integer from crypto.alerts as a where a.resolved_at is null);
end
$$;

grant execute on function crypto.evaluate_alerts() to oxp_service;

-- Once a session has closed: fewer than half the median participants of
-- the 7 trading days before it (from the metrics rollup) opens an alert
-- for that day. The next closed session replaces the question, so an
-- older day's alert then clears.
create or replace function crypto.check_participation() returns void
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_day date;
    v_count integer;
    v_median numeric;
begin
    select s.trading_day into v_day from crypto.session_control as s
    where s.phase <> 'OPEN' order by s.trading_day desc limit 1;
    if v_day is null then
        return;
    end if;
    perform crypto.alert_clear('participation_low', a.subject)
    from crypto.alerts as a
    where a.rule = 'participation_low' and a.resolved_at is null and a.subject <> crypto.iso_day(v_day);
    -- The day's row once the rollup counted it after the close (its stamp
    -- says so); until then there is no verdict, and no scan of a million rows.
    select m.participants into v_count from crypto.daily_metrics as m
    where m.trading_day = v_day and m.books_stamp = crypto.metrics_books_stamp(v_day);
    if v_count is null then
        return;
    end if;
    select percentile_cont(0.5) within group (order by m.participants) into v_median
    from (
        select m.participants from crypto.daily_metrics as m
        where m.trading_day < v_day order by m.trading_day desc limit 7
    ) as m
    having count(*) = 7;
    if v_median is not null and v_count < v_median / 2 then
        perform crypto.alert_open('participation_low', crypto.iso_day(v_day), 'warning', jsonb_build_object(
            'trading_day', v_day, 'participants', v_count, 'median_of_last_7', v_median));
    end if;
end
$$;

-- Points a settlement paid against what its winners should have: every
-- win at the day's terms, plus what a correction could not take back
-- from a player who had spent it (written off: still paid). Any
-- difference is critical.
create or replace function crypto.check_settlement_payout(p_day date) returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_row crypto.daily_metrics;
    v_expected bigint;
    v_gap bigint;
begin
    select m.* into v_row from crypto.daily_metrics as m where m.trading_day = p_day;
    if v_row.trading_day is null or v_row.unsettled > 0 then
        return null;
    end if;
    select v_row.wins * coalesce(s.points_per_win, crypto.setting_int('points.per_win')) + coalesce((
        select sum(x.written_off) from crypto.correction_transfers as x
        where x.trading_day = p_day
    ), 0)
    into v_expected
    from crypto.session_control as s where s.trading_day = p_day;
    v_gap := v_row.points_settlement - v_expected;
    if v_gap <> 0 then
        perform crypto.alert_open('settlement_payout', crypto.iso_day(p_day), 'critical', jsonb_build_object(
            'trading_day', p_day, 'paid', v_row.points_settlement, 'expected', v_expected,
            'wins', v_row.wins, 'action', 'stop and investigate: oxp integrity check, audit.user_points_history'));
    else
        perform crypto.alert_clear('settlement_payout', crypto.iso_day(p_day));
    end if;
    return v_gap;
end
$$;

-- Each API process adds what it answered since its last report; the
-- minute's totals so far come back.
create or replace function api.note_http_counts(p_total bigint, p_errors bigint) returns jsonb
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    insert into crypto.http_counts as h (minute, total, errors)
    values (date_trunc('minute', crypto.now()), p_total, p_errors)
    on conflict (minute) do update set total = h.total + excluded.total, errors = h.errors + excluded.errors
    returning jsonb_build_object('minute', crypto.kst(h.minute), 'total', h.total, 'errors', h.errors)
$$;

grant execute on function api.note_http_counts(bigint, bigint) to auth_service;
