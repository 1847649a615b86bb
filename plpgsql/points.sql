-- One rule for every cursor page: 1 to 100 items, newest first; the cursor
-- is the last id seen, so pages stay stable while new rows arrive.
create or replace function crypto.page_limit(p_limit integer) returns integer
language plpgsql immutable
set search_path = crypto, pg_temp
as $$
begin
    if p_limit is null or p_limit not between 1 and 100 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'limit must be between 1 and 100';
    end if;
    return p_limit;
end
$$;

create or replace function crypto.page(p_items json, p_last bigint, p_count integer, p_limit integer)
returns json
language sql immutable
as $$
    select json_build_object(
        'items', coalesce(p_items, '[]'),
        'next_cursor', case when p_count = p_limit then p_last end
    )
$$;

create or replace function api.points_balance() returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
begin
    return (
        select json_build_object('balance', a.balance, 'as_of', crypto.kst(crypto.now()))
        from crypto.ledger_accounts as a where a.user_id = v_uid
    );
end
$$;

grant execute on function api.points_balance() to app_user, app_admin;

-- One page of a user's ledger entries, newest first (the page rule of
-- crypto.page_limit / crypto.page): the player's own ledger and the
-- operator's `oxp points ledger` are this one query.
-- Generic plans, pruned when they start: the second statement's custom
-- plans won the cost comparison on every call, so each page was planned
-- again (a fifth of its time); a generic one costs a lock per month.
create or replace function crypto.ledger_page(p_user uuid, p_cursor bigint, p_limit integer) returns json
language plpgsql stable
set search_path = crypto, pg_temp
set plan_cache_mode = force_generic_plan
as $$
declare
    v_account bigint := crypto.user_account(p_user);
    v_since timestamptz := crypto.now() - interval '31 days';
    v_entries crypto.ledger_entries [];
    v_recent integer := 0;
    v_from timestamptz;
    v_to timestamptz;
    v_items json;
    v_last bigint;
    v_count integer;
begin
    perform crypto.page_limit(p_limit);
    -- First the last month's entries (and a day before it), which is where
    -- an active player's page is: only those months' partitions are read
    -- (every month's index cost a page ~0.1 ms more at 16 months). Exact
    -- when that month alone fills the page: a player's entries are written
    -- under their account's lock, so an entry written later has a larger
    -- id, and each is dated when its transaction began, less than an hour
    -- before it wrote (crypto.require_fresh_transaction, checked under the
    -- locks): no entry dated before the day read can outrank one dated
    -- within the month. A clock that ever moved (outside production only)
    -- breaks that (crypto.ledger_dates_follow_ids), and every month is read
    -- then. The cursor as a bound (not `is null or`): a generic plan can
    -- then use it in the index.
    if crypto.ledger_dates_follow_ids() then
        select
            array_agg(x.e order by (x.e).id desc), count(*) filter (where (x.e).created_at >= v_since)
        into v_entries, v_recent
        from (
            select e from crypto.ledger_entries as e
            where e.account_id = v_account and e.id < coalesce(p_cursor, 9223372036854775807)
                and e.created_at >= v_since - interval '1 day'
            order by e.id desc
            limit p_limit
        ) as x;
    end if;
    if v_recent < p_limit then
        select array_agg(x.e order by (x.e).id desc)
        into v_entries
        from (
            select e from crypto.ledger_entries as e
            where e.account_id = v_account and e.id < coalesce(p_cursor, 9223372036854775807)
            order by e.id desc
            limit p_limit
        ) as x;
    end if;
    select min(e.created_at), max(e.created_at), min(e.id), count(*)
    into v_from, v_to, v_last, v_count
    from unnest(v_entries) as e;
    -- Their transfers, in a second statement: with the page's times as
    -- values, only the months it spans are read (a join on each entry's
    -- time set up a scan of every month, per entry: 13.7 ms a page at 50M
    -- entries over 15 months). The page and its cursor are the entries'
    -- (an entry whose transfer is missing, an integrity violation, still
    -- shows, and hides nothing after it).
    select
        json_agg(json_build_object(
            'id', e.id, 'amount', e.amount, 'balance_after', e.balance_after,
            'reason', t.reason, 'cause', t.idempotency_key, 'memo', t.memo,
            'created_at', crypto.kst(e.created_at)
        ) order by e.id desc)
    into v_items
    from unnest(v_entries) as e
    left join crypto.ledger_transfers as t
        on t.id = e.transfer_id and t.created_at = e.created_at and t.created_at between v_from and v_to;
    return crypto.page(v_items, v_last, v_count, p_limit);
end
$$;

create or replace function api.points_ledger(p_cursor bigint default null, p_limit integer default 20)
returns json
language sql stable security definer
set search_path = crypto, pg_temp
as $$ select crypto.ledger_page(crypto.require_user(), p_cursor, p_limit) $$;

grant execute on function api.points_ledger(bigint, integer) to app_user, app_admin;
