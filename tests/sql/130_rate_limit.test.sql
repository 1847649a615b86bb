begin;
select plan(6);

select crypto.clock_set('2026-11-24 09:00:10+09');
select gen_random_uuid() as u \gset
select is(
    (select array_agg((api.rate_limit('1.2.3.4', :'u', array['predictions']) ->> 'allowed')::boolean)
     from generate_series(1, 6)),
    array[true, true, true, true, true, false],
    'five predictions a minute, then refused'
);
select is((api.rate_limit('1.2.3.4', :'u', array['predictions']) ->> 'retry_after')::int, 50,
    'retry when the full window is over (10 s into it)');
select is((select hits from crypto.rate_limits where bucket = 'predictions:minute:' || :'u'), 7,
    'refused requests count too: hammering keeps a client limited');
select is((api.rate_limit('1.2.3.4', :'u', array['point_reads']) ->> 'allowed')::boolean, true,
    'other kinds have their own budget');

-- 30 s into the next minute, half of the previous window still weighs: 7 * 0.5 = 3.5.
select crypto.clock_set('2026-11-24 09:01:30+09');
select is(
    (select array_agg((api.rate_limit('5.6.7.8', :'u', array['predictions']) ->> 'allowed')::boolean)
     from generate_series(1, 3)),
    array[true, false, false],
    'the window slides: the previous minute counts by how much of it overlaps'
);
update crypto.settings set value = '1' where key = 'ratelimit.ip_per_minute';
select is((api.rate_limit('9.9.9.9', null, '{}') -> 'tightest' ->> 'limit')::int, 1, 'limits are settings');

select * from finish();
rollback;
