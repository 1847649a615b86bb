-- Rate limits shared by every API process: a sliding window estimated from
-- two fixed windows (the previous one weighted by how much of it still lies
-- inside the window ending now). The limits are settings; the shim only
-- names the caller and the kind.
--
-- One statement counts the request in every bucket that applies and says
-- whether any is over its limit. Requests per IP and point reads count
-- whether or not they succeed, refused ones too: a client that keeps
-- hammering stays limited until it waits (Retry-After). Predictions per
-- user are not the gate's: they are a rule of crypto.place_prediction
-- (crypto.prediction_rate), checked and counted on the player's locked
-- daily-limits row when a prediction is accepted, so a player's refused or
-- mistyped attempts never use up their budget and the limit is exact.
-- PL/pgSQL, not SQL, so that its plan is cached: this runs on every request.
-- Called by api.rate_limit (a transaction of its own) and api.rate_limit_gate
-- (the request's own transaction, before its call: the rows it counts stay
-- locked through the call). The user's buckets are one row each, so a
-- player's own requests queue behind each other and the per-user limits are
-- exact. The IP's bucket, which many players behind one NAT address share,
-- is one row per counting backend (rate_limits.shard, sql/0036): a session
-- only ever locks its own, so no request waits on another's call. Its count
-- is the sum over the shards, the other sessions' as committed: two
-- requests of one IP in flight at once may both take its last free place,
-- so the per-IP limit can be passed by at most the API's database
-- connections less one, per window, and by a lease more per other API
-- process (below: their reservations are as invisible until committed).

-- Signatures of the release before sql/0036: p_count is gone (the gate
-- counts too), and the gate takes the subjects it is to lease (its default
-- keeps the three-argument call of the API before working, which an
-- overload would make ambiguous).
drop function if exists crypto.rate_limit_take(text, uuid, text[], boolean);
drop function if exists api.rate_limit_gate(text, uuid, text[]);

-- Exactly when one more request is under a limit again (in seconds from
-- now), given this window's count as a retry would find it (`hits`), the
-- previous window's, the limit, the window's length and how much of it has
-- passed: while the previous window slides out, if this window alone
-- leaves room; else in the next window, once enough of this one slid out.
-- p_next: requests already counted in the next window (a race at a
-- window's end, crypto.prediction_rate), which count now and never slide
-- out before it: unless one fits within this window, the answer is the
-- next window's, with this one as its previous.
-- Shared by the gate and crypto.prediction_rate, which call it only for a
-- refusal. PL/pgSQL, not SQL: a SQL function with a SET clause is planned
-- again in every statement that calls it (plpgsql/clock.sql), and a flood
-- of refusals calls it on each.
drop function if exists crypto.rate_limit_retry_after(numeric, numeric, numeric, numeric, numeric);
create or replace function crypto.rate_limit_retry_after(
    p_hits numeric, p_previous_hits numeric, p_max_hits numeric, p_window numeric, p_elapsed numeric,
    p_next numeric default 0
) returns numeric
language plpgsql immutable
set search_path = crypto, pg_temp
as $$
declare
    v_hits numeric := p_hits + p_next;
begin
    if v_hits + 1 <= p_max_hits and p_previous_hits > 0 then
        return ceil(p_window - p_elapsed - (p_max_hits - v_hits - 1) * p_window / p_previous_hits);
    end if;
    if p_next > 0 then
        return crypto.rate_limit_retry_after(p_next, p_hits, p_max_hits, p_window, p_elapsed - p_window);
    end if;
    return ceil(p_window - p_elapsed + greatest(0, p_window - (p_max_hits - 1) * p_window / nullif(v_hits, 0)));
end
$$;

create or replace function crypto.rate_limit_take(
    p_ip text, p_user uuid, p_kinds text[], p_lease text[]
) returns json
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_now timestamptz := crypto.now();
    v_share numeric := coalesce((crypto.setting('ratelimit.lease_share') #>> '{}')::numeric, 0);
    v_lease_max integer := coalesce(crypto.setting_int('ratelimit.lease_max'), 0);
    v_answer json;
    v_reserve jsonb;
begin
    if p_user is not null then
        perform crypto.note_activity(p_user);
    end if;
    -- Every bucket here counts the request ('predictions' in p_kinds, as
    -- the API of the release before this one still sends, is not the
    -- gate's any more: crypto.prediction_rate).
    with rules as (
        select
            v.bucket, v.subject, v.shard, (s.value #>> '{}')::integer as max_hits,
            case when v.subject = any(p_lease) then least(floor((s.value #>> '{}')::integer * v_share), v_lease_max)
                else 0 end::integer as lease_size,
            v.seconds as window_seconds,
            to_timestamp(floor(extract(epoch from v_now) / v.seconds) * v.seconds) as window_start
        from (values
            ('ip:' || p_ip, 'ip', 'ratelimit.ip_per_minute', 60, p_ip is not null, pg_backend_pid()),
            ('point_reads:minute:' || p_user, 'point_reads', 'ratelimit.point_reads_per_minute', 60,
                p_user is not null and 'point_reads' = any(p_kinds), 0)
        ) as v (bucket, subject, setting, seconds, applies, shard)
        join crypto.settings as s on s.key = v.setting
        where v.applies
    ),

    -- The user's bucket, then the IP's shard: one order for the rows other
    -- sessions may also want (the player's own requests, gated or counted
    -- alone, db.count_alone); the shard is this session's.
    counted as (
        insert into crypto.rate_limits as l (bucket, window_start, shard, hits)
        select r.bucket, r.window_start, r.shard, 1 from rules as r
        order by r.bucket like 'ip:%', r.bucket
        on conflict (bucket, window_start, shard) do update set hits = l.hits + 1
        returning l.bucket, l.hits
    ),

    -- hits: this window's count before this request (this session's own
    -- row as just updated, which waited for any other writer of it, and the
    -- other shards as committed); this request adds one. after: what a retry
    -- would find in this window (this request stays counted).
    windows as (
        select
            r.bucket, r.subject, r.shard, r.window_start, r.lease_size,
            r.max_hits, r.window_seconds::numeric as w,
            (c.hits - 1 + coalesce(o.hits, 0))::numeric as hits,
            (c.hits + coalesce(o.hits, 0))::numeric as hits_after,
            coalesce(p.hits, 0)::numeric as previous_hits,
            extract(epoch from v_now - r.window_start) as elapsed
        from rules as r
        join counted as c on c.bucket = r.bucket
        left join lateral (
            select sum(x.hits) as hits from crypto.rate_limits as x
            where x.bucket = r.bucket and x.window_start = r.window_start and x.shard <> r.shard
        ) as o on true
        left join lateral (
            select sum(x.hits) as hits from crypto.rate_limits as x
            where x.bucket = r.bucket and x.window_start = r.window_start - make_interval(secs => r.window_seconds)
        ) as p on true
    ),

    estimated as (
        select
            e.*,
            e.previous_hits * (e.w - e.elapsed) / e.w + e.hits + 1 as estimate
        from windows as e
    ),

    -- A lease (README "Rate limits"), for each subject the asking API
    -- process holds none of (p_lease: 'ip', 'point_reads'): how many more
    -- of its requests that process may let through on its own, without
    -- asking, until the window ends (gate.Leases): a share of the limit
    -- (ratelimit.lease_share, at most ratelimit.lease_max), never more than
    -- is left after this request, none when this one is refused. They are
    -- counted here, now (reserve below): a player's point reads stay exact
    -- (their one row serialises the gates), and per IP only gates in flight
    -- at once in several processes can reserve the same room (one lease
    -- each, on top of the in-flight bound above).
    leases as (
        select t.subject, t.bucket, t.window_start, t.shard, t.max_hits, t.estimate, t.n, t.expires_in
        from (
            select
                e.*,
                least(e.lease_size, greatest(floor(e.max_hits - e.estimate), 0)) as n,
                e.w - e.elapsed as expires_in
            from estimated as e
        ) as t
        where (select bool_and(a.estimate <= a.max_hits) from estimated as a) and t.n > 0
    )

    select json_build_object(
        'allowed', coalesce(bool_and(e.estimate <= e.max_hits), true),
        'retry_after', coalesce(max(crypto.rate_limit_retry_after(
            e.hits_after, e.previous_hits, e.max_hits, e.w, e.elapsed
        )) filter (where e.estimate > e.max_hits), 0),
        'tightest', (
            select json_build_object(
                'limit', t.max_hits,
                'remaining', greatest(floor(t.max_hits - t.estimate), 0),
                'reset', ceil(t.w - t.elapsed),
                'window', t.w
            )
            from estimated as t order by t.max_hits - t.estimate limit 1
        ),
        'leases', (
            select json_object_agg(l.subject, json_build_object(
                'n', l.n,
                'limit', l.max_hits,
                'remaining', greatest(floor(l.max_hits - l.estimate), 0),
                'expires_in', round(l.expires_in, 3)
            ))
            from leases as l
        )
    ),
    (
        select jsonb_agg(jsonb_build_object(
            'bucket', l.bucket, 'window_start', l.window_start, 'shard', l.shard, 'n', l.n
        ))
        from leases as l
    )
    into v_answer, v_reserve
    from estimated as e;
    -- Rows this statement counted cannot be written again by it: the
    -- reservation is a second statement, only when a lease was granted.
    if v_reserve is not null then
        update crypto.rate_limits as l set hits = l.hits + r.n
        from jsonb_to_recordset(v_reserve) as r (bucket text, window_start timestamptz, shard integer, n integer)
        where l.bucket = r.bucket and l.window_start = r.window_start and l.shard = r.shard;
    end if;
    return v_answer;
end
$$;

-- Signatures before sql/0039, when a player's prediction rate was counted
-- in crypto.rate_limits (buckets predictions:minute:<user>, :hour:).
drop function if exists crypto.prediction_rate(uuid);
drop function if exists crypto.rate_limit_count(uuid, text);

-- One per-player limit's counts around p_now, from the windows kept on the
-- player's daily-limits row (crypto.rate_window, sql/0039): the window
-- before now's, now's, and the one after. d is how many windows now's comes
-- after the latest one counted in, so hits[3 + d + j] is the count of
-- now's window + j; out of what is kept (or before any count) it is 0.
create or replace function crypto.rate_window_hits(
    p_state crypto.rate_window, p_now timestamptz, p_seconds integer
) returns integer[]
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_d integer := floor(extract(epoch from p_now) / p_seconds) - floor(extract(epoch from p_state.at) / p_seconds);
begin
    return array[
        coalesce(p_state.hits[2 + v_d], 0), coalesce(p_state.hits[3 + v_d], 0), coalesce(p_state.hits[4 + v_d], 0)
    ];
end
$$;

-- The same windows with one accepted prediction counted in now's. A window
-- after the latest one moves them on (keeping the two before now's); now's
-- may also be the latest or one or two before it (a submission that began
-- earlier than one that counted first), and is counted there. Before the
-- session's first count, or with a clock moved back past what is kept
-- (outside production), they start over from now's.
create or replace function crypto.rate_window_count(
    p_state crypto.rate_window, p_now timestamptz, p_seconds integer
) returns crypto.rate_window
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_window timestamptz := to_timestamp(floor(extract(epoch from p_now) / p_seconds) * p_seconds);
    v_d integer := floor(extract(epoch from p_now) / p_seconds) - floor(extract(epoch from p_state.at) / p_seconds);
begin
    if v_d is null or v_d < -2 then
        return row(v_window, array[0, 0, 1])::crypto.rate_window;
    elsif v_d > 0 then
        return row(
            v_window, array[coalesce(p_state.hits[1 + v_d], 0), coalesce(p_state.hits[2 + v_d], 0), 1]
        )::crypto.rate_window;
    end if;
    p_state.hits[3 + v_d] := p_state.hits[3 + v_d] + 1;
    return p_state;
end
$$;

-- The per-user prediction limits (a minute, an hour): would one more
-- accepted prediction be over either? Read from the player's daily-limits
-- row (p_limits), not counted: crypto.place_prediction counts a prediction
-- on that row when it accepts it (crypto.rate_window_count), so a refusal
-- or a typo costs the player nothing. Exact where place_prediction calls
-- it, with that row locked, which every submission of theirs takes first:
-- no two of their submissions check at once. (The row is per session: two
-- sessions never take predictions within an hour of each other, the
-- longest window.) The clock is the transaction's, read when it began, not
-- when it got the lock: a submission that began just before a window's end
-- may check after one that began just after it and counted in the next
-- window. So the next window's count is this window's too: every
-- prediction counted before this check is seen (transactions are seconds
-- long, a window a minute or more: none began two windows later; nor is a
-- count read from further ahead, which only a clock moved back, outside
-- production, leaves). Answers as the gate does (allowed, retry_after,
-- tightest: the RateLimit-* headers the shim puts on the answer, db._answer).
create or replace function crypto.prediction_rate(p_limits crypto.user_daily_limits, p_now timestamptz)
returns json
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_per_minute integer := crypto.setting_int('ratelimit.predictions_per_minute');
    v_per_hour integer := crypto.setting_int('ratelimit.predictions_per_hour');
    -- For each limit: the previous window's count, this one's, the next one's.
    v_minute_hits integer [] := crypto.rate_window_hits(p_limits.rate_minute, p_now, 60);
    v_hour_hits integer [] := crypto.rate_window_hits(p_limits.rate_hour, p_now, 3600);
    -- For each limit (a minute, an hour): how much of its window has
    -- passed, and one more prediction's estimate.
    v_minute_elapsed numeric := extract(epoch from p_now) - floor(extract(epoch from p_now) / 60) * 60;
    v_hour_elapsed numeric := extract(epoch from p_now) - floor(extract(epoch from p_now) / 3600) * 3600;
    v_minute_estimate numeric;
    v_hour_estimate numeric;
    v_minute_tighter boolean;
begin
    v_minute_estimate := v_minute_hits[1] * (60 - v_minute_elapsed) / 60 + v_minute_hits[2] + v_minute_hits[3] + 1;
    v_hour_estimate := v_hour_hits[1] * (3600 - v_hour_elapsed) / 3600 + v_hour_hits[2] + v_hour_hits[3] + 1;
    v_minute_tighter := v_per_minute - v_minute_estimate <= v_per_hour - v_hour_estimate;
    return json_build_object(
        'allowed', v_minute_estimate <= v_per_minute and v_hour_estimate <= v_per_hour,
        'retry_after', greatest(
            case when v_minute_estimate > v_per_minute then crypto.rate_limit_retry_after(
                v_minute_hits[2], v_minute_hits[1], v_per_minute, 60, v_minute_elapsed, v_minute_hits[3]
            ) end,
            case when v_hour_estimate > v_per_hour then crypto.rate_limit_retry_after(
                v_hour_hits[2], v_hour_hits[1], v_per_hour, 3600, v_hour_elapsed, v_hour_hits[3]
            ) end,
            0
        ),
        'tightest', case when v_minute_tighter then
            json_build_object(
                'limit', v_per_minute, 'remaining', greatest(floor(v_per_minute - v_minute_estimate), 0),
                'reset', ceil(60 - v_minute_elapsed), 'window', 60
            )
        else
            json_build_object(
                'limit', v_per_hour, 'remaining', greatest(floor(v_per_hour - v_hour_estimate), 0),
                'reset', ceil(3600 - v_hour_elapsed), 'window', 3600
            )
        end
    );
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
    return crypto.rate_limit_take(p_ip, p_user, p_kinds, '{}');
end
$$;

grant execute on function api.rate_limit(text, uuid, text[]) to auth_service;

-- The limiter in the request's own transaction, before its call (in one
-- round trip where the shim pipelines, db._run_gated): no transaction of its
-- own per request, and no statement after the call.
-- A refusal cannot raise (the rollback would undo its count, and refused
-- requests count): it leaves oxp.rate_limit unset, and the call's statement
-- runs only where oxp.rate_limit = 'allowed' (db.GUARD), so the refused call
-- never starts. Transaction-local: it cannot outlive this request. When the
-- call fails, its rollback takes the count too, and the shim counts it with
-- api.rate_limit.
create or replace function api.rate_limit_gate(
    p_ip text, p_user uuid, p_kinds text[], p_lease text[] default '{}'
) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_answer json := crypto.rate_limit_take(p_ip, p_user, p_kinds, p_lease);
begin
    perform set_config('oxp.rate_limit', case when (v_answer ->> 'allowed')::boolean then 'allowed' else '' end, true);
    return v_answer;
end
$$;

grant execute on function api.rate_limit_gate(text, uuid, text[], text[]) to auth_service;
-- And to the API's login itself, which may become auth_service anyway: the
-- gate then shares its statement with the switch to the caller, so that a
-- limited request sends no more statements than an unlimited one.
grant usage on schema api to authenticator;
grant execute on function api.rate_limit_gate(text, uuid, text[], text[]) to authenticator;

-- Kept for one release (README "Deploy order"): an API process of the
-- release before sql/0036 calls it after each gated call, to count the IP.
-- The gate counts the IP now, so it counts nothing. Drop it in the release
-- after.
create or replace function api.rate_limit_note(p_ip text, p_user uuid, p_kinds text[]) returns void
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    -- @plpgsql_check_options: extra_warnings = false
    return;
end
$$;

grant execute on function api.rate_limit_note(text, uuid, text[]) to auth_service;

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
