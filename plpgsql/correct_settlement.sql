-- Corrections of settled days. History is never edited: the original
-- settlement rows and closes stay, each correction appends what it changed
-- (crypto.eod_price_corrections, crypto.settlement_revisions) and posts
-- compensating transfers (crypto.correction_transfers). What players see is
-- the latest revision of each symbol, else the original settlement.

create or replace view crypto.current_settlements as
select
    s.trading_day,
    s.symbol,
    s.prev_trading_day,
    case when r.correction_id is null then s.close_prev else r.close_prev end as close_prev,
    case when r.correction_id is null then s.close_today else r.close_today end as close_today,
    case when r.correction_id is null then s.change else r.change end as change,
    coalesce(r.outcome, s.outcome) as outcome,
    s.source,
    s.fetched_at,
    s.settled_at,
    r.correction_id,
    r.revised_at
from crypto.settlements as s
left join lateral (
    select v.* from crypto.settlement_revisions as v
    where v.trading_day = s.trading_day and v.symbol = s.symbol
    order by v.correction_id desc
    limit 1
) as r on true;

comment on view crypto.current_settlements is
'Each settled symbol as players see it: its latest correction, else the original settlement.';

grant select on crypto.current_settlements to oxp_service, auditor;

-- Before sql/0038 both took the id alone. Dropped here, in the repeatable
-- pass's one transaction with their callers' new bodies, so no caller is
-- ever left without its function.
drop function if exists crypto.prediction_award(bigint);
drop function if exists crypto.prediction_points(bigint);

-- Points a prediction holds: its award plus what corrections moved since.
-- Named by its key (id and its own trading day), and read from the ledger
-- and the corrections alone: predictions is partitioned by day, and a
-- lookup there by id alone would probe every month's partition.
create or replace function crypto.prediction_points(p_prediction bigint, p_day date) returns bigint
language sql stable
set search_path = crypto, pg_temp
as $$
    select
        coalesce((
            select t.amount from crypto.ledger_transfer_by_key(crypto.award_key(p_day, p_prediction)) as t
            where t.refusal is null
        ), 0)
        + coalesce((
            select sum(c.amount) from crypto.correction_transfers as c
            where c.prediction_id = p_prediction and c.trading_day = p_day
        ), 0)
$$;

grant execute on function crypto.prediction_points(bigint, date) to oxp_service, app_admin, auditor;

-- Points a prediction earned under its current result: what its latest
-- correction says it should hold, else what it holds. It differs from
-- prediction_points only by what a reversal could not take back.
create or replace function crypto.prediction_award(p_prediction bigint, p_day date) returns bigint
language sql stable
set search_path = crypto, pg_temp
as $$
    select coalesce(
        (
            select c.target from crypto.correction_transfers as c
            where c.prediction_id = p_prediction and c.trading_day = p_day
            order by c.correction_id desc limit 1
        ),
        crypto.prediction_points(p_prediction, p_day)
    )
$$;

grant execute on function crypto.prediction_award(bigint, date) to oxp_service, app_admin, auditor;

-- Corrects the closes that settled session p_day read (its own and the
-- previous trading day's) and recomputes every settled session that read a
-- changed close: p_day, the day before (whose close it was) and the day
-- after (which compared with it). For each prediction whose result flips,
-- a transfer with the issuance account moves the difference between what
-- it holds and what it should hold now (points.per_win for a win, else 0).
-- A reversal takes no more than the balance: what the player already spent
-- is written off by the house and recorded, never owed.
-- Running the same correction again finds every close equal and changes
-- nothing, so a retried command never pays or takes twice.
create or replace function crypto.correct_settlement(p_day date, p_closes jsonb, p_reason text)
returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
-- Refusal details name days as ISO text whatever the caller's DateStyle (keys
-- and audit subjects do anyway: crypto.iso_day).
set datestyle = 'ISO, YMD'
as $$
declare
    v_prev date := crypto.prev_trading_day(p_day);
    v_next date := crypto.next_trading_day(p_day);
    v_phase crypto.session_phase;
    v_problems text;
    v_first text;
    v_count integer;
    v_changes jsonb;
    v_stale jsonb;
    v_correction bigint;
    v_issuance bigint := crypto.system_account('issuance');
    v_points bigint := crypto.setting_int('points.per_win');
    v_row record;
    v_delta bigint;
    v_take bigint;
    v_transfer crypto.ledger_transfers;
    v_summary jsonb;
begin
    if coalesce(length(btrim(p_reason)), 0) not between 3 and 500 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A correction needs a reason of 3 to 500 characters: players and auditors read it';
    end if;
    if jsonb_typeof(p_closes) is distinct from 'array' or jsonb_array_length(p_closes) = 0 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A correction gives at least one close: [{trading_day, symbol, close}, ...]';
    end if;

    -- Every session this can touch, in day order, as settlement locks them.
    perform crypto.lock_settlement_day(v_prev);
    perform crypto.lock_settlement_day(p_day);
    perform crypto.lock_settlement_day(v_next);

    v_phase := (crypto.require_session(p_day)).phase;
    if v_phase <> 'SETTLED' then
        raise exception using errcode = 'OX111', message = 'NOT_SETTLED',
            detail = format('Session %s is %s: load its closes with oxp eod load; corrections are for settled days',
                p_day, v_phase);
    end if;

    -- Every refused row at once: the rules of any close, and this session's
    -- own bounds (the two days it read, the symbols it had).
    with rows as (
        select
            case when r.value ->> 'line' ~ '^\d{1,9}$' then (r.value ->> 'line')::integer
                else r.n::integer end as line,
            crypto.try_date(r.value ->> 'trading_day') as trading_day,
            upper(btrim(r.value ->> 'symbol')) as symbol
        from jsonb_array_elements(p_closes) with ordinality as r (value, n)
    ),

    problems as (
        select p.line, p.sqlstate, p.detail from crypto.eod_prices_problems(p_closes, true) as p
        union all
        select r.line, 'OX000', format('session %s read the closes of %s and %s, not of %s',
            p_day, v_prev, p_day, r.trading_day)
        from rows as r
        where r.trading_day is not null and r.trading_day not in (v_prev, p_day)
        union all
        select r.line, 'OX102', format('%s is not in the universe of %s', r.symbol, p_day)
        from rows as r
        where r.symbol is not null and not exists (
            select from crypto.active_universe as u where u.trading_day = p_day and u.symbol = r.symbol
        )
    )

    select string_agg(format('line %s: %s', p.line, p.detail), E'\n' order by p.line),
        (array_agg(p.sqlstate order by p.line))[1], count(distinct p.line)
    into v_problems, v_first, v_count
    from problems as p;
    if v_count > 0 then
        raise exception using errcode = v_first, message = crypto.error_code(v_first),
            detail = format(E'%s of %s rows refused, nothing corrected:\n%s',
                v_count, jsonb_array_length(p_closes), v_problems);
    end if;

    -- The closes that differ from the ones on record, and every settled
    -- symbol whose recorded closes differ from what they will be: a close
    -- that was missing when a day settled VOID may have arrived since.
    with given as (
        select (r ->> 'trading_day')::date as trading_day, upper(btrim(r ->> 'symbol')) as symbol,
            (r ->> 'close')::numeric(20, 6) as close
        from jsonb_array_elements(p_closes) as r
    )

    select
        (
            select jsonb_agg(jsonb_build_object(
                'trading_day', g.trading_day, 'symbol', g.symbol, 'old_close', e.close, 'old_source', e.source,
                'old_fetched_at', e.fetched_at, 'new_close', g.close
            ) order by g.trading_day, g.symbol)
            from given as g
            left join crypto.eod_prices as e on e.trading_day = g.trading_day and e.symbol = g.symbol
            where e.close is distinct from g.close
        ),
        (
            select jsonb_agg(jsonb_build_object('trading_day', s.trading_day, 'symbol', s.symbol))
            from crypto.current_settlements as s
            join crypto.session_control as sc on sc.trading_day = s.trading_day and sc.phase = 'SETTLED'
            left join given as g1 on g1.trading_day = s.trading_day and g1.symbol = s.symbol
            left join given as g0 on g0.trading_day = s.prev_trading_day and g0.symbol = s.symbol
            left join crypto.eod_prices as e1 on e1.trading_day = s.trading_day and e1.symbol = s.symbol
            left join crypto.eod_prices as e0 on e0.trading_day = s.prev_trading_day and e0.symbol = s.symbol
            where (g1.symbol is not null or g0.symbol is not null)
                and (coalesce(g1.close, e1.close) is distinct from s.close_today
                    or coalesce(g0.close, e0.close) is distinct from s.close_prev)
        )
    into v_changes, v_stale;
    if v_changes is null and v_stale is null then
        return jsonb_build_object('trading_day', p_day, 'correction_id', null, 'closes_changed', 0,
            'detail', 'Nothing to correct: every close given is the one on record and the one settled');
    end if;

    insert into crypto.settlement_corrections (trading_day, reason, actor, created_at)
    values (p_day, btrim(p_reason), crypto.current_actor(), crypto.now())
    returning id into v_correction;

    insert into crypto.eod_price_corrections
        (correction_id, trading_day, symbol, old_close, old_source, old_fetched_at, new_close)
    select v_correction, (c ->> 'trading_day')::date, c ->> 'symbol', (c ->> 'old_close')::numeric,
        c ->> 'old_source', (c ->> 'old_fetched_at')::timestamptz, (c ->> 'new_close')::numeric
    from jsonb_array_elements(coalesce(v_changes, '[]')) as c;

    -- The corrected close is the close from now on, for sessions not yet
    -- settled too; the replaced one stays in eod_price_corrections.
    insert into crypto.eod_prices (trading_day, symbol, close, source, fetched_at)
    select k.trading_day, k.symbol, k.new_close, 'correction:' || v_correction, crypto.now()
    from crypto.eod_price_corrections as k
    where k.correction_id = v_correction
    on conflict (trading_day, symbol) do update
    set close = excluded.close, source = excluded.source, fetched_at = excluded.fetched_at;

    -- Each stale symbol recomputed from the closes now on record, by the
    -- one settlement rule.
    insert into crypto.settlement_revisions
        (correction_id, trading_day, symbol, prev_trading_day, close_prev, close_today, change, outcome,
         previous_outcome, revised_at)
    select
        v_correction, s.trading_day, s.symbol, s.prev_trading_day, p0.close, p1.close, c.change,
        crypto.settlement_outcome_at(c.change, coalesce(sc.settlement_threshold,
            (crypto.setting('settlement.threshold') #>> '{}')::numeric)),
        s.outcome, crypto.now()
    from jsonb_array_elements(v_stale) as x
    join crypto.current_settlements as s
        on s.trading_day = (x ->> 'trading_day')::date and s.symbol = x ->> 'symbol'
    join crypto.session_control as sc on sc.trading_day = s.trading_day
    left join crypto.eod_prices as p1 on p1.trading_day = s.trading_day and p1.symbol = s.symbol
    left join crypto.eod_prices as p0 on p0.trading_day = s.prev_trading_day and p0.symbol = s.symbol
    cross join lateral (select (p1.close - p0.close) / p0.close as change) as c;

    -- The accounts of every flipped prediction, locked in id order before
    -- any transfer, as every other multi-account writer does.
    perform 1 from crypto.ledger_accounts as a
    where a.id in (
        select crypto.user_account(p.user_id)
        from crypto.settlement_revisions as r
        join crypto.predictions as p on p.trading_day = r.trading_day and p.symbol = r.symbol
        where r.correction_id = v_correction
    )
    order by a.id
    for update;

    for v_row in
        select
            p.id, p.trading_day, a.id as account,
            x.target,
            x.held
        from crypto.settlement_revisions as r
        join crypto.predictions as p on p.trading_day = r.trading_day and p.symbol = r.symbol
        join crypto.session_control as sc on sc.trading_day = r.trading_day
        join crypto.ledger_accounts as a on a.user_id = p.user_id
        cross join lateral (
            select
                case when crypto.prediction_won(p.choice, r.outcome)
                    then coalesce(sc.points_per_win, v_points) else 0 end as target,
                crypto.prediction_points(p.id, p.trading_day) as held
        ) as x
        where r.correction_id = v_correction
            and crypto.prediction_won(p.choice, r.outcome) <> crypto.prediction_won(p.choice, r.previous_outcome)
        -- A player owed a payment on one day and a reversal on another (a
        -- close is read by two days): the payment lands first, so the
        -- reversal takes from it before anything is written off.
        order by a.id, x.target > x.held desc, p.id
    loop
        v_delta := v_row.target - v_row.held;
        v_take := 0;
        v_transfer := null;
        if v_delta > 0 then
            v_transfer := crypto.ledger_transfer(format('correction:%s:%s', v_correction, v_row.id),
                v_issuance, v_row.account, v_delta, 'settlement_correction', btrim(p_reason));
        elsif v_delta < 0 then
            select least(-v_delta, a.balance) into v_take from crypto.ledger_accounts as a where a.id = v_row.account;
            if v_take > 0 then
                v_transfer := crypto.ledger_transfer(format('correction:%s:%s', v_correction, v_row.id),
                    v_row.account, v_issuance, v_take, 'settlement_correction', btrim(p_reason));
            end if;
        end if;
        insert into crypto.correction_transfers (
            correction_id, prediction_id, trading_day, target, amount, transfer_id, written_off
        )
        values (
            v_correction, v_row.id, v_row.trading_day, v_row.target,
            case when v_delta > 0 then v_delta else -v_take end,
            v_transfer.id,
            case when v_delta < 0 then -v_delta - v_take else 0 end
        );
    end loop;

    v_summary := jsonb_build_object(
        'correction_id', v_correction,
        'trading_day', p_day,
        'reason', btrim(p_reason),
        'closes_changed', jsonb_array_length(coalesce(v_changes, '[]')),
        'closes', coalesce(v_changes, '[]'),
        'symbols', coalesce((
            select jsonb_agg(jsonb_build_object(
                'trading_day', r.trading_day, 'symbol', r.symbol, 'from', r.previous_outcome, 'to', r.outcome
            ) order by r.trading_day, r.symbol)
            from crypto.settlement_revisions as r where r.correction_id = v_correction
        ), '[]'),
        'paid', (
            select jsonb_build_object('predictions', count(*), 'points', coalesce(sum(c.amount), 0))
            from crypto.correction_transfers as c where c.correction_id = v_correction and c.amount > 0
        ),
        'reversed', (
            select jsonb_build_object('predictions', count(*), 'points', coalesce(-sum(c.amount), 0))
            from crypto.correction_transfers as c where c.correction_id = v_correction and c.target = 0
        ),
        'written_off', (
            select coalesce(sum(c.written_off), 0)
            from crypto.correction_transfers as c where c.correction_id = v_correction
        )
    );
    perform crypto.audit(crypto.current_actor(), 'settlement.corrected', crypto.iso_day(p_day), v_summary);
    return v_summary;
end
$$;

grant execute on function crypto.correct_settlement(date, jsonb, text) to oxp_operator, app_admin;

-- The admin route's entry: same function, the admin named in the audit.
create or replace function api.admin_correct_settlement(p_day date, p_closes jsonb, p_reason text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_admin();
    return crypto.correct_settlement(p_day, p_closes, p_reason);
end
$$;

grant execute on function api.admin_correct_settlement(date, jsonb, text) to app_admin;
