begin;
select plan(20);

-- predictions is partitioned by month of trading_day (sql/0038): a day's
-- reads (settlement, corrections, metrics) touch one month, and a month is
-- never dropped.
select is(
    (select array_agg(t order by t) from unnest(crypto.partitioned_tables()) as t),
    (select array_agg(c.oid::regclass::text order by c.oid::regclass::text) from pg_class as c
     where c.relnamespace = 'crypto'::regnamespace and c.relkind = 'p'),
    'crypto.partitioned_tables() names every partitioned table, so maintenance and clock_set make all their partitions'
);
select is(
    pg_get_partkeydef('crypto.predictions'::regclass), 'RANGE (trading_day)', 'predictions by range of trading_day'
);
select col_is_pk('crypto', 'predictions', array['id', 'trading_day'], 'its key holds the partition key');
select col_is_unique(
    'crypto', 'predictions', array['user_id', 'trading_day', 'symbol'],
    'one prediction per player, day and symbol, still enforced across the partitions'
);
select is(
    (select pg_get_constraintdef(c.oid) from pg_constraint as c
     where c.conrelid = 'crypto.correction_transfers'::regclass and c.confrelid = 'crypto.predictions'::regclass),
    'FOREIGN KEY (prediction_id, trading_day) REFERENCES crypto.predictions(id, trading_day)',
    'a correction''s transfer still points at its prediction'
);

select tests.load_calendar();
select tests.create_user('p@example.com') as p \gset

-- A day before the oldest partition (the test calendar's March): the
-- clock's shift makes its month first, as for the log tables.
select tests.open_session('2026-03-05');
select crypto.set_universe('2026-03-05', array['AAPL']);
select tests.authenticate_as(:'p');
select api.submit_prediction('AAPL', 'DOWN') ->> 'id' as mar_id \gset
select tests.clear_authentication();
select is(
    (select tableoid::regclass::text from crypto.predictions where id = :mar_id),
    'crypto.predictions_p2026_03', 'a day of an earlier month gets its own partition, not the default one'
);
select crypto.clock_set('2026-03-05 22:00Z');
select crypto.close_session('2026-03-05');

select tests.open_session('2026-11-24');
select crypto.set_universe('2026-11-24', array['AAPL', 'MSFT']);
select tests.authenticate_as(:'p');
select api.submit_prediction('AAPL', 'UP') ->> 'id' as nov_id \gset
select tests.clear_authentication();
select is(
    (select tableoid::regclass::text from crypto.predictions where id = :nov_id),
    'crypto.predictions_p2026_11', 'a prediction lands in its trading day''s month'
);
select cmp_ok(:nov_id::bigint, '>', :mar_id::bigint, 'ids come from one identity across the months');
select crypto.clock_reset();

-- A day's reads are pruned to its month.
create function pg_temp.scanned(p_sql text) returns text []
language plpgsql as $$
declare
    v_plan jsonb;
begin
    execute 'explain (format json) ' || p_sql into v_plan;
    return array(
        select distinct r #>> '{}' from jsonb_path_query(v_plan, 'strict $.**."Relation Name"') as r order by 1
    );
end
$$;
select is(
    pg_temp.scanned($$ select count(*) from crypto.predictions where trading_day = '2026-11-24' $$),
    array['predictions_p2026_11'], 'a day''s predictions are read from its month alone'
);
select is(
    (select count(*)::int from crypto.predictions where trading_day = '2026-11-24'), 1,
    'and found there'
);

-- Money is never dropped: a clock 500 days ahead (past every log's
-- retention) keeps every month of predictions, with its rows.
select array_agg(c.relname::text order by c.relname) as parts
from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
where i.inhparent = 'crypto.predictions'::regclass \gset
select crypto.clock_set(now() + interval '500 days');
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select is(:'report'::jsonb -> 'errors', '[]'::jsonb, 'maintenance runs clean');
select is_empty(
    format(
        'select unnest(%L::text []) except select c.relname::text from pg_inherits as i '
        'join pg_class as c on c.oid = i.inhrelid where i.inhparent = %L::regclass',
        :'parts', 'crypto.predictions'
    ),
    'no predictions partition is dropped'
);
select is(
    (select count(*)::int from crypto.predictions where user_id = :'p'), 2, 'nor any prediction'
);
select isnt(
    (select c.relname from pg_class as c
     where c.relname = 'predictions_p' || to_char(now() at time zone 'UTC' + interval '500 days', 'YYYY_MM')),
    null, 'and the shifted clock''s month is made ahead'
);
select crypto.clock_reset();

-- Through the parent only: the owner's policy holds, a partition is no side door.
select tests.create_user('q@example.com') as q \gset
select tests.authenticate_as(:'q');
select is((select count(*)::int from crypto.predictions), 0, 'another player sees none of them');
select throws_ok(
    'select * from crypto.predictions_p2026_11', '42501', null, 'nor reads a partition by its name'
);
select tests.clear_authentication();

-- No default partition (a row there could not move out while a correction
-- points at it): a day's month exists before its session takes a
-- prediction, and a row of a month without one is refused, never parked.
select is(to_regclass('crypto.predictions_default'), null, 'predictions has no default partition');
select tests.clear_authentication();
select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');
insert into crypto.trading_calendar (trading_day, open_at, close_at, cutoff_at, early_close)
values ('2028-03-01', '2028-03-01 14:30Z', '2028-03-01 21:00Z', '2028-03-01 14:25Z', false);
select is(to_regclass('crypto.predictions_p2028_03'), null, 'a month beyond those made ahead has no partition ...');
select crypto.open_session('2028-03-01');
select isnt(to_regclass('crypto.predictions_p2028_03'), null, '... until a session of it opens');
select throws_ok(
    format(
        'insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at) '
        'values (%L, ''2099-01-02'', ''AAPL'', ''UP'', now())', :'p'
    ),
    '23514', null, 'a prediction of a month without its partition is refused (no session opened it)'
);

select * from finish();
rollback;
