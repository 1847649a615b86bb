-- The rate limiter in three statements, not six (issue 14, item 7). The
-- request's gate now counts the IP at once, before the call, as it counts
-- the user's point reads; api.rate_limit_note, which counted the IP after
-- the call, is no longer needed (plpgsql/rate_limit.sql).
--
-- Counting the IP first would hold the IP's row through the call, and every
-- player behind one NAT address shares that row. So a per-IP count is now
-- kept in one row per counting backend (shard = pg_backend_pid()): a
-- session only ever updates its own row, so no request waits for another's
-- row lock, and the IP's count is the sum of its rows (at most one per
-- database connection that served it in the window). Per-user buckets stay
-- in one row (shard 0): a player's own requests queue, and their limits
-- stay exact.
-- Every request takes a lock on rate_limits; the new key needs the table
-- to itself. Should requests hold it for more than this, the migration
-- fails (and is run again) rather than stall the API behind it.
set local lock_timeout = '2s';
alter table crypto.rate_limits add column shard integer not null default 0;
alter table partman.template_crypto_rate_limits add column shard integer not null default 0;
alter table crypto.rate_limits drop constraint rate_limits_pkey;
alter table crypto.rate_limits add primary key (bucket, window_start, shard);
comment on column crypto.rate_limits.shard is
'The backend that counted these hits, for per-IP buckets (pg_backend_pid()); 0 for per-user buckets. '
'A bucket''s count in a window is the sum over its shards.';

-- The functions of the release before that write rate_limits, with the new
-- key under their ON CONFLICT (all their rows are shard 0, one per bucket,
-- as before): migrate commits each versioned file on its own and the
-- repeatable files after, so between the two, and for good should the
-- repeatable pass fail, the API of the release before (running through the
-- deploy) must still find its limiter working. plpgsql/rate_limit.sql
-- replaces them right after (and drops the old signatures).
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
        on conflict (bucket, window_start, shard) do update set hits = l.hits + 1
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
    on conflict (bucket, window_start, shard) do update set hits = l.hits + 1;
end
$$;

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
    on conflict (bucket, window_start, shard) do update set hits = l.hits + 1;
end
$$;
