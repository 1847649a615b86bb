-- Rate limits shared by every API process: a sliding window estimated from
-- two fixed windows (the previous one weighted by how much of it still lies
-- inside the window ending now). The shim calls this in its own committed
-- transaction before the request, so a request that then fails still counts.
-- The limits are settings; the shim only names the caller and the kind.
--
-- One statement counts the request in every bucket that applies and says
-- whether any is over its limit. Every request counts, refused ones too: a
-- client that keeps hammering stays limited until it waits (Retry-After).
-- PL/pgSQL, not SQL, so that its plan is cached: this runs on every request.
create or replace function api.rate_limit(p_ip text, p_user uuid, p_kinds text[]) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_now timestamptz := crypto.now();
    v_answer json;
begin
    -- Nothing here is worth a disk flush at commit (the table is unlogged).
    perform set_config('synchronous_commit', 'off', true);
    with rules as (
        select
            v.bucket, (s.value #>> '{}')::integer as max_hits, v.seconds as window_seconds,
            to_timestamp(floor(extract(epoch from v_now) / v.seconds) * v.seconds) as window_start
        from (values
            ('ip:' || p_ip, 'ratelimit.ip_per_minute', 60, p_ip is not null),
            ('predictions:minute:' || p_user, 'ratelimit.predictions_per_minute', 60,
                p_user is not null and 'predictions' = any(p_kinds)),
            ('predictions:hour:' || p_user, 'ratelimit.predictions_per_hour', 3600,
                p_user is not null and 'predictions' = any(p_kinds)),
            ('point_reads:minute:' || p_user, 'ratelimit.point_reads_per_minute', 60,
                p_user is not null and 'point_reads' = any(p_kinds))
        ) as v (bucket, setting, seconds, applies)
        join crypto.settings as s on s.key = v.setting
        where v.applies
    ),

    -- In bucket order: two requests never lock each other's rows in reverse.
    counted as (
        insert into crypto.rate_limits as l (bucket, window_start, hits)
        select r.bucket, r.window_start, 1 from rules as r order by r.bucket
        on conflict (bucket, window_start) do update set hits = l.hits + 1
        returning l.bucket, l.hits
    ),

    estimated as (
        select
            r.max_hits, r.window_seconds, c.hits as current_hits,
            coalesce(p.hits, 0) as previous_hits,
            extract(epoch from v_now - r.window_start)::double precision as elapsed,
            coalesce(p.hits, 0) * (r.window_seconds - extract(epoch from v_now - r.window_start)::double precision)
            / r.window_seconds + c.hits as estimate
        from rules as r
        join counted as c on c.bucket = r.bucket
        left join crypto.rate_limits as p
            on p.bucket = r.bucket and p.window_start = r.window_start - make_interval(secs => r.window_seconds)
    )

    select json_build_object(
        'allowed', coalesce(bool_and(e.estimate <= e.max_hits), true),
        -- When the estimate is back under the limit: the next window if this
        -- one alone is over it, else once enough of the previous one slid out.
        'retry_after', coalesce(max(greatest(1, ceil(case
            when e.current_hits >= e.max_hits or e.previous_hits = 0 then e.window_seconds - e.elapsed
            else e.window_seconds - e.elapsed
                - (e.max_hits - e.current_hits) * e.window_seconds::double precision / e.previous_hits
        end))) filter (where e.estimate > e.max_hits), 0),
        'tightest', (
            select json_build_object(
                'limit', t.max_hits,
                'remaining', greatest(floor(t.max_hits - t.estimate), 0),
                'reset', ceil(t.window_seconds - t.elapsed),
                'window', t.window_seconds
            )
            from estimated as t order by t.max_hits - t.estimate limit 1
        )
    )
    into v_answer
    from estimated as e;
    return v_answer;
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

grant execute on function api.rate_limit(text, uuid, text[]) to anon;
grant execute on function crypto.rate_limit_cleanup() to oxp_service;
