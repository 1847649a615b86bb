-- Rate limits shared by every API process: a sliding window estimated from
-- two fixed windows (the previous one weighted by how much of it still lies
-- inside the window ending now). The limits are settings; the shim only
-- names the caller and the kind.
--
-- One statement counts the request in every bucket that applies and says
-- whether any is over its limit. Requests per IP and point reads count
-- whether or not they succeed, refused ones too: a client that keeps
-- hammering stays limited until it waits (Retry-After). Predictions per user
-- are only checked here (would one more be over?): they are counted by
-- crypto.rate_limit_count when a prediction is accepted, so a player's
-- refused or mistyped attempts never use up their budget.
-- PL/pgSQL, not SQL, so that its plan is cached: this runs on every request.
-- Called by api.rate_limit (a transaction of its own: counts, p_count) and
-- api.rate_limit_gate (in the request's own transaction: counts the user's
-- point reads, exactly, but only looks at the IP's count, answering as if
-- this request were counted; api.rate_limit_note counts it per IP after the
-- call, so that the IP's row, which many players behind one NAT address
-- share, stays locked only until the commit, not through the call).
create or replace function crypto.rate_limit_take(
    p_ip text, p_user uuid, p_kinds text[], p_count boolean
) returns json
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_now timestamptz := crypto.now();
    v_answer json;
begin
    if p_user is not null then
        perform crypto.note_activity(p_user);
    end if;
    with rules as (
        select
            v.bucket, v.counts, (s.value #>> '{}')::integer as max_hits, v.seconds as window_seconds,
            to_timestamp(floor(extract(epoch from v_now) / v.seconds) * v.seconds) as window_start
        from (values
            ('ip:' || p_ip, 'ratelimit.ip_per_minute', 60, p_ip is not null, p_count),
            ('predictions:minute:' || p_user, 'ratelimit.predictions_per_minute', 60,
                p_user is not null and 'predictions' = any(p_kinds), false),
            ('predictions:hour:' || p_user, 'ratelimit.predictions_per_hour', 3600,
                p_user is not null and 'predictions' = any(p_kinds), false),
            ('point_reads:minute:' || p_user, 'ratelimit.point_reads_per_minute', 60,
                p_user is not null and 'point_reads' = any(p_kinds), true)
        ) as v (bucket, setting, seconds, applies, counts)
        join crypto.settings as s on s.key = v.setting
        where v.applies
    ),

    -- One lock order everywhere: the user's buckets, then the IP's, last
    -- (api.rate_limit_gate holds the user's row through the call and
    -- api.rate_limit_note takes the IP's at the end; 'ip:' sorts first by
    -- name, which here deadlocked a player's gated read against their own
    -- refused request counted alone).
    counted as (
        insert into crypto.rate_limits as l (bucket, window_start, hits)
        select r.bucket, r.window_start, 1 from rules as r where r.counts
        order by r.bucket like 'ip:%', r.bucket
        on conflict (bucket, window_start) do update set hits = l.hits + 1
        returning l.bucket, l.hits
    ),

    -- hits: this window's count before this request; this request adds one.
    -- after: what a retry would find in this window (this request stays
    -- counted where refused requests count).
    windows as (
        select
            r.max_hits, r.window_seconds::numeric as w,
            coalesce(c.hits - 1, cur.hits, 0)::numeric as hits,
            coalesce(c.hits, coalesce(cur.hits, 0) + (r.bucket = 'ip:' || p_ip)::integer)::numeric as hits_after,
            coalesce(p.hits, 0)::numeric as previous_hits,
            extract(epoch from v_now - r.window_start) as elapsed
        from rules as r
        left join counted as c on c.bucket = r.bucket
        left join crypto.rate_limits as cur
            on not r.counts and cur.bucket = r.bucket and cur.window_start = r.window_start
        left join crypto.rate_limits as p
            on p.bucket = r.bucket and p.window_start = r.window_start - make_interval(secs => r.window_seconds)
    ),

    estimated as (
        select
            e.*,
            e.previous_hits * (e.w - e.elapsed) / e.w + e.hits + 1 as estimate
        from windows as e
    )

    select json_build_object(
        'allowed', coalesce(bool_and(e.estimate <= e.max_hits), true),
        -- Exactly when one more request is under the limit again (with
        -- this one counted where refused requests count): while the
        -- previous window slides out, if this window alone leaves room;
        -- else in the next window, once enough of this one slid out.
        'retry_after', coalesce(max(ceil(case
            when e.hits_after + 1 <= e.max_hits and e.previous_hits > 0 then
                e.w - e.elapsed - (e.max_hits - e.hits_after - 1) * e.w / e.previous_hits
            else
                e.w - e.elapsed + greatest(0, e.w - (e.max_hits - 1) * e.w / nullif(e.hits_after, 0))
        end)) filter (where e.estimate > e.max_hits), 0),
        'tightest', (
            select json_build_object(
                'limit', t.max_hits,
                'remaining', greatest(floor(t.max_hits - t.estimate), 0),
                'reset', ceil(t.w - t.elapsed),
                'window', t.w
            )
            from estimated as t order by t.max_hits - t.estimate limit 1
        )
    )
    into v_answer
    from estimated as e;
    return v_answer;
end
$$;

-- The count in a transaction of its own: for a request with no database
-- call of its own to share (db.count_alone). Nothing here is worth a disk
-- flush at commit (the counters are unlogged; a lost activity row only
-- undercounts a day's active users).
create or replace function api.rate_limit(p_ip text, p_user uuid, p_kinds text[]) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform set_config('synchronous_commit', 'off', true);
    return crypto.rate_limit_take(p_ip, p_user, p_kinds, true);
end
$$;

grant execute on function api.rate_limit(text, uuid, text[]) to auth_service;

-- The limiter in the request's own transaction, around its call (in one
-- round trip where the shim pipelines, db._run_gated): no transaction of its
-- own per request.
-- This looks (api.rate_limit_note counts, after the call); a refusal cannot
-- raise (the rollback would undo its count, and refused requests count): it
-- leaves oxp.rate_limit unset, and the call's statement runs only where
-- oxp.rate_limit = 'allowed' (db.GUARD), so the refused call never starts.
-- Transaction-local: it cannot outlive this request. When the call fails,
-- its rollback takes the count too, and the shim counts it with api.rate_limit.
create or replace function api.rate_limit_gate(p_ip text, p_user uuid, p_kinds text[]) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_answer json := crypto.rate_limit_take(p_ip, p_user, p_kinds, false);
begin
    perform set_config('oxp.rate_limit', case when (v_answer ->> 'allowed')::boolean then 'allowed' else '' end, true);
    return v_answer;
end
$$;

grant execute on function api.rate_limit_gate(text, uuid, text[]) to auth_service;

-- The per-IP count of api.rate_limit_gate's request, the last statement
-- before its commit: the IP's row is locked from here to the commit only,
-- not through the call, so the players behind one address do not queue
-- behind each other's calls. Counted after looking, two requests of one
-- IP in flight at once may both pass its last free place: the per-IP limit
-- can be passed by at most the API's database connections less one, per
-- window. (The per-user limits stay exact: one player's requests may queue.)
create or replace function api.rate_limit_note(p_ip text, p_user uuid, p_kinds text[]) returns void
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    -- The gate's arguments, so the shim passes one tuple to both; only the
    -- IP is counted here (the gate counted the user's buckets).
    -- @plpgsql_check_options: extra_warnings = false
    if p_ip is null then
        return;
    end if;
    insert into crypto.rate_limits as l (bucket, window_start, hits)
    values ('ip:' || p_ip, to_timestamp(floor(extract(epoch from crypto.now()) / 60) * 60), 1)
    on conflict (bucket, window_start) do update set hits = l.hits + 1;
end
$$;

grant execute on function api.rate_limit_note(text, uuid, text[]) to auth_service;

-- One accepted prediction in the per-user prediction buckets (called by
-- crypto.place_prediction in the transaction that inserts it, so only a
-- committed prediction counts).
create or replace function crypto.rate_limit_count(p_user uuid, p_kind text) returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
begin
    insert into crypto.rate_limits as l (bucket, window_start, hits)
    select p_kind || ':' || v.name || ':' || p_user,
        to_timestamp(floor(extract(epoch from crypto.now()) / v.seconds) * v.seconds), 1
    from (values ('hour', 3600), ('minute', 60)) as v (name, seconds)
    order by 1
    on conflict (bucket, window_start) do update set hits = l.hits + 1;
end
$$;

-- Windows older than the longest rule are never read again.
create or replace function crypto.rate_limit_cleanup() returns integer
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    with gone as (
        delete from crypto.rate_limits as l where l.window_start < crypto.now() - interval '2 hours'
        returning 1
    )
    select count(*)::integer from gone
$$;

grant execute on function crypto.rate_limit_cleanup() to oxp_service;
