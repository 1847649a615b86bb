begin;
select plan(19);

-- A player's ledger page (crypto.ledger_page) reads the last month's
-- partitions alone when that month fills the page, and every month
-- otherwise. Whatever it reads, the page is the account's newest entries
-- by id: each page here is held against that query over the whole ledger.
select tests.load_calendar();
select tests.create_user('lp@example.com') as p \gset
select crypto.user_account(:'p') as acct \gset
select crypto.system_account('adjustments') as adj \gset

create function pg_temp.page(p_user uuid, p_cursor bigint, p_limit integer) returns bigint []
language sql as $$
    select array_agg((i ->> 'id')::bigint order by (i ->> 'id')::bigint desc)
    from json_array_elements(crypto.ledger_page(p_user, p_cursor, p_limit) -> 'items') as i
$$;
create function pg_temp.newest(p_account bigint, p_cursor bigint, p_limit integer) returns bigint []
language sql as $$
    select array_agg(x.id order by x.id desc) from (
        select e.id from crypto.ledger_entries as e
        where e.account_id = p_account and (p_cursor is null or e.id < p_cursor)
        order by e.id desc limit p_limit
    ) as x
$$;
create function pg_temp.credit(p_key text) returns bigint
language plpgsql as $$
declare
    v_account bigint := crypto.user_account((select u.id from crypto.users as u where u.email = 'lp@example.com'));
    v_transfer bigint := (crypto.ledger_transfer(p_key, crypto.system_account('adjustments'), v_account, 1, 'adjustment')).id;
begin
    return (select e.id from crypto.ledger_entries as e where e.transfer_id = v_transfer and e.account_id = v_account);
end
$$;

-- The ledger's writes below follow its clock, as in production, where the
-- clock never moves: each scene sets the clock, then says so.
create function pg_temp.at(p_at timestamptz) returns void
language sql as $$
    select crypto.clock_set(p_at);
    update crypto.settings set value = 'true' where key = 'ledger.dates_follow_ids';
$$;

-- Any move of the clock clears "dates follow ids", for good: a move back
-- dates new entries before old ones, and a move forward while a transfer
-- that read the old time waits for a lock dates it before one written
-- earlier.
update crypto.settings set value = 'true' where key = 'ledger.dates_follow_ids';
select crypto.clock_set('2030-01-01 00:00Z');
select is(crypto.ledger_dates_follow_ids(), false, 'a clock moved: dates no longer follow ids');
update crypto.settings set value = 'true' where key = 'ledger.dates_follow_ids';
select crypto.clock_set('2030-01-02 00:00Z');
select is(crypto.ledger_dates_follow_ids(), false, 'a move forward clears it too');
select crypto.clock_reset();
update crypto.settings set value = 'true' where key = 'ledger.dates_follow_ids';
select crypto.clock_reset();
select is(
    crypto.ledger_dates_follow_ids(), true,
    'a reset of a clock that is not shifted (production''s) moves nothing and keeps it'
);
select pg_temp.at('2026-06-03 12:00Z');

select pg_temp.credit('lp:jun:' || i) from generate_series(1, 5) as i;
select pg_temp.at('2026-11-20 12:00Z');
select pg_temp.credit('lp:nov:' || i) from generate_series(1, 3) as i;

select is(pg_temp.page(:'p', null, 3), pg_temp.newest(:acct, null, 3), 'the last month fills a page of 3');
select is(
    pg_temp.page(:'p', null, 3),
    (select array_agg(e.id order by e.id desc) from crypto.ledger_entries as e
     where e.account_id = :acct and e.created_at >= '2026-11-01'),
    'with the three November entries'
);
select is(
    pg_temp.page(:'p', null, 5), pg_temp.newest(:acct, null, 5),
    'a page the last month cannot fill reads the months before it'
);
select is(cardinality(pg_temp.page(:'p', null, 5)), 5, 'five entries: three of November, two of June');
select (pg_temp.newest(:acct, null, 3))[3] as third \gset
select is(
    pg_temp.page(:'p', :third, 3), pg_temp.newest(:acct, :third, 3),
    'the next page, past the last month, is June''s'
);
select is(
    pg_temp.page(:'p', (pg_temp.newest(:acct, null, 8))[8], 3), null,
    'and past the first entry there is nothing'
);

-- An entry dated up to a day before one written earlier (its transaction
-- began first, then waited for the account's lock) still comes first: the
-- last month is read with the day before it.
select pg_temp.at('2026-10-30 13:00Z');
select pg_temp.credit('lp:oct30:' || i) from generate_series(1, 3) as i;
select pg_temp.at('2026-10-30 06:00Z');
select pg_temp.credit('lp:late') as late \gset
select pg_temp.at('2026-11-30 12:00Z');
select pg_temp.credit('lp:nov30:' || i) from generate_series(1, 3) as i;
-- The month read starts 2026-10-30 12:00: the three of 13:00 are in it,
-- the late one (06:00) is in the day before it.
select is(
    pg_temp.page(:'p', null, 4), pg_temp.newest(:acct, null, 4),
    'an entry dated before the month read, but newer, is on the page'
);
select is((pg_temp.page(:'p', null, 4))[4], :late::bigint, 'in its place, after the three of Nov 30');
select is(pg_temp.page(:'p', null, 7), pg_temp.newest(:acct, null, 7), 'and every page size agrees');
-- A cursor page the last month fills, and its cursor.
select (pg_temp.newest(:acct, null, 1))[1] as c3 \gset
select is(pg_temp.page(:'p', :c3, 2), pg_temp.newest(:acct, :c3, 2), 'a cursor page within the month');
select is(
    (crypto.ledger_page(:'p', :c3, 2) ->> 'next_cursor')::bigint, (pg_temp.newest(:acct, :c3, 2))[2],
    'its next cursor is its last entry'
);

-- A clock moved back by more than a day: an entry dated months before
-- older ones. The setting is false, and pages read every month.
select crypto.clock_set('2026-07-01 12:00Z');
select pg_temp.credit('lp:july') as july \gset
select crypto.clock_set('2026-11-30 13:00Z');
select is(crypto.ledger_dates_follow_ids(), false, 'the clock moved: the setting is false');
select is((pg_temp.page(:'p', null, 3))[1], :july::bigint, 'the newest entry comes first, dated July');
select is(pg_temp.page(:'p', null, 3), pg_temp.newest(:acct, null, 3), 'the page is exact');
-- What the setting guards: forced true, the last month alone fills the page
-- and the July entry is left off it.
update crypto.settings set value = 'true' where key = 'ledger.dates_follow_ids';
select isnt(
    pg_temp.page(:'p', null, 3), pg_temp.newest(:acct, null, 3),
    'forced true under such a ledger, a page would leave the July entry off'
);
select crypto.clock_reset();
select is(crypto.ledger_dates_follow_ids(), false, 'oxp clock reset clears it too');

select * from finish();
rollback;
