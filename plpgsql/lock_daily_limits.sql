-- A player's row of a session's limits (predictions made, ad slot unlocks,
-- ad point rewards), created if need be and locked FOR UPDATE: the lock
-- that serialises the player's predictions, ad clicks and ad rewards of
-- that session, so no race overruns a limit. Lock order where more is
-- locked: the ad impression first, then this row, then the ledger.
create or replace function crypto.lock_daily_limits(p_user uuid, p_day date)
returns crypto.user_daily_limits
language sql volatile
set search_path = crypto, pg_temp
as $$
    insert into crypto.user_daily_limits as l (user_id, trading_day)
    values (p_user, p_day)
    on conflict (user_id, trading_day) do update set user_id = l.user_id
    returning *
$$;
