-- Each session has its own symbols: what an admin set for that day, else a
-- copy of the previous session's, else the default list.
create or replace function crypto.ensure_universe(p_day date) returns integer
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_from date;
    v_rows integer;
begin
    if exists (select from crypto.active_universe as u where u.trading_day = p_day) then
        return 0;
    end if;
    select max(u.trading_day) into v_from from crypto.active_universe as u where u.trading_day < p_day;
    if v_from is not null then
        insert into crypto.active_universe (trading_day, symbol, position)
        select p_day, u.symbol, u.position from crypto.active_universe as u where u.trading_day = v_from;
    else
        insert into crypto.active_universe (trading_day, symbol, position)
        select p_day, d.symbol, d.position
        from jsonb_array_elements_text(crypto.setting('universe.default')) with ordinality as d (symbol, position);
    end if;
    get diagnostics v_rows = row_count;
    return v_rows;
end
$$;

-- The one way to set a day's symbols (oxp universe set, and any admin
-- path): every symbol is checked and named when wrong. A ticker nobody has
-- vouched for (crypto.unknown_symbols: not in crypto.known_symbols, never
-- priced) is refused unless p_allow_unknown, since a typo would otherwise
-- sit in a universe all day and end VOID for every player; an allowed one
-- is remembered as known (source 'operator').
create or replace function crypto.set_universe(
    p_day date, p_symbols text[], p_allow_unknown boolean default false
) returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_symbols text[];
    v_bad text;
    v_unknown text[];
    v_phase crypto.session_phase;
begin
    select array_agg(upper(btrim(s)) order by n) into v_symbols
    from unnest(p_symbols) with ordinality as t (s, n);
    if coalesce(cardinality(v_symbols), 0) = 0 or cardinality(v_symbols) > 100 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A universe has between 1 and 100 symbols';
    end if;
    select s into v_bad from unnest(v_symbols) with ordinality as t (s, n)
    where s is null or s !~ '^[A-Z][A-Z0-9.\-]{0,9}$'
    order by n limit 1;
    if found then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('"%s" is not a symbol: 1 to 10 letters, digits, "." or "-", starting with a letter',
                left(coalesce(v_bad, ''), 20));
    end if;
    select s into v_bad from unnest(v_symbols) as s group by s having count(*) > 1 order by s limit 1;
    if found then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('%s is listed twice', v_bad);
    end if;
    perform crypto.require_trading_day(p_day);
    v_unknown := crypto.unknown_symbols(v_symbols);
    if cardinality(v_unknown) > 0 and not coalesce(p_allow_unknown, false) then
        raise exception using errcode = 'OX130', message = 'UNKNOWN_SYMBOL',
            detail = format('Unknown symbol%s: %s (not in the known list and never priced); '
                'check the spelling, or allow with --allow-unknown',
                case when cardinality(v_unknown) > 1 then 's' else '' end, array_to_string(v_unknown, ', '));
    end if;
    select s.phase into v_phase from crypto.session_control as s where s.trading_day = p_day for update;
    if v_phase is not null and v_phase <> 'OPEN' then
        raise exception using errcode = 'OX106', message = 'INVALID_TRANSITION',
            detail = format('Session %s is %s; its universe is final', p_day, v_phase);
    end if;
    select p.symbol into v_bad from crypto.predictions as p
    where p.trading_day = p_day and p.symbol <> all(v_symbols)
    order by p.symbol limit 1;
    if found then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('%s already has predictions for %s; it cannot be removed', v_bad, p_day);
    end if;
    insert into crypto.known_symbols (symbol, source, added_at, added_by)
    select s, 'operator', crypto.now(), crypto.current_actor() from unnest(v_unknown) as s
    on conflict (symbol) do nothing;
    delete from crypto.active_universe as u where u.trading_day = p_day and u.symbol <> all(v_symbols);
    insert into crypto.active_universe (trading_day, symbol, position)
    select p_day, s::crypto.symbol, n from unnest(v_symbols) with ordinality as t (s, n)
    on conflict (trading_day, symbol) do update set position = excluded.position;
    perform crypto.audit(crypto.current_actor(), 'universe.set', crypto.iso_day(p_day),
        jsonb_build_object('symbols', v_symbols, 'allowed_unknown', to_jsonb(v_unknown)));
    return cardinality(v_symbols);
end
$$;

grant execute on function crypto.set_universe(date, text[], boolean) to oxp_operator, app_admin;

create or replace function api.universe_today() returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    -- NO_SESSION before the first session opens.
    v_day date := (crypto.require_session((crypto.current_session()).trading_day)).trading_day;
    v_prev date;
begin
    v_prev := crypto.prev_trading_day(v_day);
    return json_build_object(
        'trading_day', v_day,
        'previous_trading_day', v_prev,
        'symbols', coalesce((
            select json_agg(json_build_object('symbol', u.symbol, 'previous_close', e.close) order by u.position)
            from crypto.active_universe as u
            left join crypto.eod_prices as e on e.trading_day = v_prev and e.symbol = u.symbol
            where u.trading_day = v_day
        ), '[]')
    );
end
$$;

grant execute on function api.universe_today() to anon, app_user, app_admin;
