-- The leaderboard (issue 13, item 3): points won in settled sessions per
-- player and period, with accuracy = wins / decided (VOIDs are not decided).
-- Kept in crypto.leaderboard, refreshed from the settled facts for the
-- players of a day when it settles or a correction revises it; the route
-- reads a page of that table in its rank order.

-- The first day of the period that holds p_day.
create or replace function crypto.leaderboard_start(p_period text, p_day date) returns date
language sql immutable
set search_path = crypto, pg_temp
as $$
    select case p_period
        when 'week' then date_trunc('week', p_day)::date
        when 'month' then date_trunc('month', p_day)::date
        when 'all' then date '1970-01-01'
    end
$$;

grant execute on function crypto.leaderboard_start(text, date) to oxp_service, app_admin, auditor;

-- The streak rule, in one place. A streak is a run of consecutive won
-- predictions among a player's decided ones (WON or LOST) ordered by
-- trading day, then symbol: a loss ends it; a VOID neither extends nor
-- breaks it (it is not decided); a day not settled yet has no outcome and
-- is not counted. current_streak is the run that ends at the latest decided
-- prediction (0 when that one lost), best_streak the longest run ever.
-- For the players of p_day, over all their settled history.
create or replace function crypto.streak_rows(p_day date)
returns table (user_id uuid, current_streak integer, best_streak integer)
language sql stable
set search_path = crypto, pg_temp
as $$
    -- Each loss opens a group; the wins after it (up to the next loss) are
    -- the group's run. The last group holds the current streak. Every
    -- player of the day gets a row, 0 and 0 when a correction left nothing
    -- decided, so no stale streak outlives the facts it came from.
    select
        d.user_id,
        coalesce((array_agg(g.run order by g.losses_before desc))[1], 0)::integer,
        coalesce(max(g.run), 0)::integer
    from (select distinct x.user_id from crypto.predictions as x where x.trading_day = p_day) as d
    left join (
        select x.user_id, x.losses_before, count(*) filter (where x.won) as run
        from (
            select
                p.user_id,
                crypto.prediction_won(p.choice, s.outcome) as won,
                count(*) filter (where not crypto.prediction_won(p.choice, s.outcome))
                    over (partition by p.user_id order by p.trading_day, p.symbol) as losses_before
            from crypto.predictions as p
            join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
            where
                s.outcome <> 'VOID'
                and p.user_id in (select y.user_id from crypto.predictions as y where y.trading_day = p_day)
        ) as x
        group by x.user_id, x.losses_before
    ) as g on g.user_id = d.user_id
    group by d.user_id
$$;

-- Every settled prediction of a day with its player, its outcome (WON,
-- LOST or VOID) and crypto.prediction_award at once: the latest
-- correction's target, else the award's transfer (a prediction with no
-- correction holds exactly its award), else 0. The same rule, as joins:
-- the per-row function costs about 0.2 ms a call, 20 s for a day of 100,000
-- players; this reads the same rows in one pass. 190_leaderboard checks the
-- two agree, corrections included. The caller only groups these rows: a
-- join with a function's rows can be planned as a nested loop over them.
create or replace function crypto.day_awards(p_day date)
returns table (prediction_id bigint, user_id uuid, outcome text, award bigint)
language sql stable
set search_path = crypto, pg_temp
as $$
    select p.id, p.user_id, crypto.prediction_outcome(p.choice, s.outcome), coalesce(c.target, t.amount, 0)
    from crypto.predictions as p
    join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
    left join crypto.ledger_transfer_keys as k on k.idempotency_key = crypto.award_key(p.trading_day, p.id)
    left join crypto.ledger_transfers as t
        on t.id = k.transfer_id and t.created_at = k.created_at and t.refusal is null
    left join lateral (
        select x.target from crypto.correction_transfers as x
        where x.prediction_id = p.id order by x.correction_id desc limit 1
    ) as c on true
    where p.trading_day = p_day
$$;

-- Recomputed, not incremented: a second refresh of the same day (a retry,
-- a correction) gives the same rows. The day's rows (its awards read once,
-- crypto.leaderboard_days), then the day's players' rows of its week, month
-- and all time summed from their days, and their streaks
-- (crypto.user_streaks: see crypto.streak_rows for the rule).
create or replace function crypto.leaderboard_refresh(p_day date) returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
-- Planned for each day's dates, never a generic plan cached from another
-- day (PL/pgSQL may switch to one after five runs).
set plan_cache_mode = force_custom_plan
as $$
declare
    v_period text;
    v_start date;
    v_end date;
    v_rows integer := 0;
    v_count integer;
begin
    insert into crypto.leaderboard_days as d
        (user_id, trading_day, points, wins, losses, voids, refreshed_at)
    select
        a.user_id, p_day, sum(a.award),
        count(*) filter (where a.outcome = 'WON'),
        count(*) filter (where a.outcome = 'LOST'),
        count(*) filter (where a.outcome = 'VOID'),
        crypto.now()
    from crypto.day_awards(p_day) as a
    group by a.user_id
    on conflict (user_id, trading_day) do update
        set points = excluded.points, wins = excluded.wins, losses = excluded.losses,
            voids = excluded.voids, refreshed_at = excluded.refreshed_at;
    -- The day's rows are new to the planner's statistics: read as none, the
    -- sums below were planned as nested loops over 100,000 players each.
    analyze crypto.leaderboard_days;
    foreach v_period in array array['week', 'month', 'all'] loop
        v_start := crypto.leaderboard_start(v_period, p_day);
        v_end := case v_period
            when 'week' then v_start + 7
            when 'month' then (v_start + interval '1 month')::date
            else date '9999-12-31'
        end;
        insert into crypto.leaderboard as l
            (period, period_start, user_id, points, wins, losses, voids, refreshed_at)
        select
            v_period, v_start, d.user_id, sum(d.points), sum(d.wins), sum(d.losses), sum(d.voids), crypto.now()
        from crypto.leaderboard_days as t
        join crypto.leaderboard_days as d
            on d.user_id = t.user_id and d.trading_day >= v_start and d.trading_day < v_end
        where t.trading_day = p_day
        group by d.user_id
        on conflict (period, period_start, user_id) do update
            set points = excluded.points, wins = excluded.wins, losses = excluded.losses,
                voids = excluded.voids, refreshed_at = excluded.refreshed_at;
        get diagnostics v_count = row_count;
        v_rows := v_rows + v_count;
    end loop;
    insert into crypto.user_streaks as k (user_id, current_streak, best_streak, refreshed_at)
    select r.user_id, r.current_streak, r.best_streak, crypto.now()
    from crypto.streak_rows(p_day) as r
    on conflict (user_id) do update
        set current_streak = excluded.current_streak, best_streak = excluded.best_streak,
            refreshed_at = excluded.refreshed_at;
    return v_rows;
end
$$;

grant execute on function crypto.leaderboard_refresh(date) to oxp_operator;

-- Refreshed by the metrics rollup (pg_cron, every 10 minutes) for each
-- settled day whose books moved since its board was (crypto.rollup_metrics,
-- crypto.leaderboard_stamps), not inside the
-- settlement: a refresh reads every award of the day's players, which would
-- make settling a million predictions many times slower. The triggers that
-- did it at commit are gone.
drop trigger if exists leaderboard_settled on crypto.session_control;
drop trigger if exists leaderboard_revised on crypto.settlement_revisions;
drop function if exists crypto.leaderboard_on_settled();

-- A player's public name, or none (null): 2 to 20 characters, no "@" (never
-- an email), no control characters; unique whatever the case.
create or replace function api.set_nickname(p_nickname text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_name text := nullif(btrim(p_nickname), '');
begin
    if v_name is not null and (char_length(v_name) not between 2 and 20 or v_name ~ '[[:cntrl:]@]') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A nickname has 2 to 20 characters, without "@" or control characters';
    end if;
    if exists (select from crypto.users as u where lower(u.nickname) = lower(v_name) and u.id <> v_uid) then
        raise exception using errcode = 'OX180', message = 'NICKNAME_TAKEN',
            detail = format('"%s" is taken; choose another nickname', v_name);
    end if;
    begin
        update crypto.users set nickname = v_name where id = v_uid;
    exception when unique_violation then
        -- Taken by a concurrent request between the check and the update.
        raise exception using errcode = 'OX180', message = 'NICKNAME_TAKEN',
            detail = format('"%s" is taken; choose another nickname', v_name);
    end;
    perform crypto.audit(crypto.current_actor(), 'user.nickname', v_uid::text, jsonb_build_object('nickname', v_name));
    return json_build_object('nickname', v_name);
end
$$;

grant execute on function api.set_nickname(text) to app_user, app_admin;

-- A cursor that reveals nothing and cannot be forged: the payload is
-- encrypted (AES-256-CBC) under a key the database keeps
-- (crypto.server_secrets, readable by no role), with an HMAC-SHA-256 of the
-- payload, cut to 16 bytes, as the IV (a synthetic IV, as in SIV): opening
-- it decrypts and checks the IV is the HMAC of what came out, so a cursor
-- changed in any bit, or sealed under another key, opens to nothing. The
-- same payload always seals alike (no randomness: the board is a stable
-- read, and one page always gives the same cursor). Sealed rather than
-- paged on an opaque tie-breaker: the cursor also carries the rank it
-- numbers from, which a client must not choose either. p_purpose keeps
-- the keys of one kind of cursor from opening another's.
create or replace function crypto.cursor_keys(p_purpose text, out enc_key bytea, out mac_key bytea)
language plpgsql stable
set search_path = crypto, pg_temp
as $$
begin
    -- strict: a database without its key fails loudly, never pages with none.
    select
        ext.hmac(convert_to(p_purpose || '/enc', 'UTF8'), k.secret, 'sha256'),
        ext.hmac(convert_to(p_purpose || '/mac', 'UTF8'), k.secret, 'sha256')
    into strict enc_key, mac_key
    from crypto.server_secrets as k where k.name = 'cursor';
end
$$;

create or replace function crypto.cursor_seal(p_purpose text, p_payload text) returns text
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    k record := crypto.cursor_keys(p_purpose);
    v_plain bytea := convert_to(p_payload, 'UTF8');
    v_iv bytea := substr(ext.hmac(v_plain, k.mac_key, 'sha256'), 1, 16);
begin
    -- base64url without padding: safe in a query string as it is.
    return rtrim(translate(encode(v_iv || ext.encrypt_iv(v_plain, k.enc_key, v_iv, 'aes-cbc/pad:pkcs'), 'base64'),
        E'+/\n', '-_'), '=');
end
$$;

-- The payload of a cursor this database sealed for p_purpose, or null for
-- anything else (not base64url as seal writes it, too short or long,
-- changed, another key's). No padding oracle: the blocks are decrypted
-- without a padding check (pad:none never raises on whole blocks), the
-- PKCS#7 padding is stripped whatever it holds, and its validity is only
-- one more condition on the answer, decided with the tag: a changed cursor
-- fails the same way, in the same steps, whether its padding came out good
-- or bad. The tags are compared through one more HMAC, so the time the
-- comparison takes tells nothing of the expected tag either.
create or replace function crypto.cursor_open(p_purpose text, p_cursor text) returns text
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    k record := crypto.cursor_keys(p_purpose);
    v_raw bytea;
    v_padded bytea;
    v_pad integer;
    v_cut integer;
    v_plain bytea;
    v_pad_ok boolean;
    v_tag_ok boolean;
begin
    if p_cursor is null or length(p_cursor) > 400 or p_cursor !~ '^[A-Za-z0-9_-]+$' or length(p_cursor) % 4 = 1 then
        return null;
    end if;
    v_raw := decode(rpad(translate(p_cursor, '-_', '+/'), (length(p_cursor) + 3) / 4 * 4, '='), 'base64');
    -- The IV, then whole AES blocks (at least one); and written as seal
    -- writes it: decode ignores the unused low bits of the last character,
    -- so four spellings of one cursor would open alike. One cursor, one text.
    if length(v_raw) < 32 or length(v_raw) % 16 <> 0
        or rtrim(translate(encode(v_raw, 'base64'), E'+/\n', '-_'), '=') <> p_cursor then
        return null;
    end if;
    v_padded := ext.decrypt_iv(substr(v_raw, 17), k.enc_key, substr(v_raw, 1, 16), 'aes-cbc/pad:none');
    -- PKCS#7: the last byte n (1 to 16) says how many bytes of n end the
    -- text. Cut at least 1 and at most 16 whatever it says.
    v_pad := get_byte(v_padded, length(v_padded) - 1);
    v_cut := least(greatest(v_pad, 1), 16);
    v_plain := substr(v_padded, 1, length(v_padded) - v_cut);
    v_pad_ok := v_pad between 1 and 16
        and substr(v_padded, length(v_padded) - v_cut + 1) = decode(repeat(lpad(to_hex(v_cut), 2, '0'), v_cut), 'hex');
    v_tag_ok := ext.hmac(substr(ext.hmac(v_plain, k.mac_key, 'sha256'), 1, 16), k.mac_key, 'sha256')
        = ext.hmac(substr(v_raw, 1, 16), k.mac_key, 'sha256');
    if not (v_tag_ok and v_pad_ok) then
        return null;
    end if;
    return convert_from(v_plain, 'UTF8');
end
$$;

-- One page of the board for the period that holds today (New York date),
-- in rank order: points, then wins, then the player's id, all descending
-- (the id is fixed, so ties never swap between pages). Accuracy is null
-- below the minimum of decided predictions. Public: nicknames only, never
-- an email or an id.
-- The cursor is a keyset, not an offset: "period|period_start|rank|points|
-- wins|user_id" of the last row shown, sealed (crypto.cursor_seal: a
-- player's id is private, and a forged key could start a page, or number
-- its ranks, anywhere), so
-- the next page is one index range after that row, as fast deep as first,
-- and a refresh between two pages neither repeats nor skips a player who
-- did not move. It pins the period it began in: paging over a new Monday
-- goes on through the week it started. Ranks go on from the cursor's.
create or replace function api.leaderboard(
    p_period text default 'week', p_limit integer default 20, p_cursor text default null
) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_start date;
    v_min integer := crypto.setting_int('leaderboard.min_decided');
    v_key text[];
    -- Above every row when there is no cursor: the first page.
    v_rank bigint := 0;
    v_points bigint := 9223372036854775807;
    v_wins integer := 2147483647;
    v_uid uuid := 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid;
    v_items json;
    v_count integer;
    v_last_points bigint;
    v_last_wins integer;
    v_last_uid uuid;
begin
    if p_period is null or p_period not in ('week', 'month', 'all') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'period is week, month or all';
    end if;
    perform crypto.page_limit(p_limit);
    v_start := crypto.leaderboard_start(p_period, (crypto.now() at time zone 'America/New_York')::date);
    if p_cursor is not null then
        v_key := regexp_match(
            crypto.cursor_open('leaderboard', p_cursor),
            '^(week|month|all)\|([0-9]{4}-[0-9]{2}-[0-9]{2})\|([0-9]{1,18})\|([0-9]{1,18})\|([0-9]{1,9})\|'
            '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$'
        );
        if v_key is null then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = 'cursor is not one this board gave: pass next_cursor back as it came';
        end if;
        if v_key[1] <> p_period then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = format('this cursor pages the %s board, not the %s one', v_key[1], p_period);
        end if;
        v_start := crypto.try_date(v_key[2]);
        v_rank := v_key[3]::bigint;
        v_points := v_key[4]::bigint;
        v_wins := v_key[5]::integer;
        v_uid := v_key[6]::uuid;
        if v_start is null or v_start <> crypto.leaderboard_start(p_period, v_start) then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = 'cursor is not one this board gave: pass next_cursor back as it came';
        end if;
    end if;
    -- One more row than asked tells whether a next page exists.
    with page as (
        select l.*, row_number() over (order by l.points desc, l.wins desc, l.user_id desc) as n
        from (
            select l.* from crypto.leaderboard as l
            where
                l.period = p_period and l.period_start = v_start
                and (l.points, l.wins, l.user_id) < (v_points, v_wins, v_uid)
            order by l.points desc, l.wins desc, l.user_id desc
            limit p_limit + 1
        ) as l
    )

    select
        json_agg(json_build_object(
            'rank', v_rank + r.n, 'nickname', u.nickname, 'points', r.points, 'wins', r.wins,
            'losses', r.losses, 'voids', r.voids, 'decided', r.wins + r.losses,
            'accuracy', case when r.wins + r.losses >= v_min
                then round(r.wins::numeric / (r.wins + r.losses), 4) end
        ) order by r.n) filter (where r.n <= p_limit),
        count(*),
        (array_agg(r.points) filter (where r.n = p_limit))[1],
        (array_agg(r.wins) filter (where r.n = p_limit))[1],
        (array_agg(r.user_id) filter (where r.n = p_limit))[1]
    into v_items, v_count, v_last_points, v_last_wins, v_last_uid
    from page as r
    join crypto.users as u on u.id = r.user_id;
    return json_build_object(
        'period', p_period, 'period_start', v_start, 'min_decided', v_min,
        'items', coalesce(v_items, '[]'),
        'next_cursor', case when v_count > p_limit then crypto.cursor_seal('leaderboard', concat_ws(
            '|', p_period, to_char(v_start, 'YYYY-MM-DD'), v_rank + p_limit, v_last_points, v_last_wins, v_last_uid
        )) end
    );
end
$$;

grant execute on function api.leaderboard(text, integer, text) to anon, app_user, app_admin;
