-- A trading day's session, or NO_SESSION: the one place that refuses a day
-- with no session (settling, correcting, results, moving its phase). A null day
-- is "no session has opened yet" (crypto.current_session() found none),
-- said with when the next one opens where the calendar knows it.
create or replace function crypto.require_session(p_day date) returns crypto.session_control
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_session crypto.session_control;
    v_next date;
begin
    select * into v_session from crypto.session_control as s where s.trading_day = p_day;
    if v_session.trading_day is not null then
        return v_session;
    end if;
    if p_day is not null then
        raise exception using errcode = 'OX105', message = 'NO_SESSION',
            detail = format('No session for %s', p_day);
    end if;
    v_next := crypto.next_session_day();
    raise exception using errcode = 'OX105', message = 'NO_SESSION',
        -- format() renders NULL as '': the clause is added only with a next day.
        detail = 'No session has opened yet' || case when v_next is null then '' else format(
            '; the session for %s opens at %s', v_next, crypto.kst(crypto.session_opens_at(v_next))) end;
end
$$;
