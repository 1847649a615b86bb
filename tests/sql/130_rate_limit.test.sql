begin;
select plan(22);

select crypto.clock_set('2026-11-24 09:00:10+09');
select gen_random_uuid() as u \gset
-- Predictions are a rule of crypto.place_prediction (crypto.prediction_rate,
-- 030_submit_prediction): the gate neither counts nor refuses them, even
-- when the API of the release before this one asks it to.
select is(
    (select array_agg((api.rate_limit('1.2.3.4', :'u', array['predictions']) ->> 'allowed')::boolean)
     from generate_series(1, 6)),
    array[true, true, true, true, true, true],
    'the gate does not count predictions'
);
select is(
    (select count(*)::int from crypto.rate_limits where bucket like 'predictions:%'), 0,
    'no prediction bucket was written by the gate'
);
select is((api.rate_limit('1.2.3.4', :'u', array['predictions']) ->> 'allowed')::boolean, true,
    'the gate lets a prediction request through: the call checks the player''s rate (031_prediction_rate)');
select is((api.rate_limit('1.2.3.4', :'u', array['point_reads']) ->> 'allowed')::boolean, true,
    'other kinds have their own budget');

-- Per IP every request counts, refused ones too; Retry-After is exact there as well.
update crypto.settings set value = '3' where key = 'ratelimit.ip_per_minute';
select crypto.clock_set('2026-11-24 10:00:10+09');
select is(
    (select array_agg((api.rate_limit(ip, null, '{}') ->> 'allowed')::boolean order by ip, n)
     from (values ('5.5.5.5'), ('6.6.6.6')) as v (ip) cross join generate_series(1, 4) as n),
    array[true, true, true, false, true, true, true, false],
    'three requests a minute per IP, then refused'
);
-- 4 counted: at 10:01:30 the previous minute weighs 4 * 30/60 = 2, plus the retry = 3.
select crypto.clock_set('2026-11-24 10:01:29+09');
select is((api.rate_limit('5.5.5.5', null, '{}') ->> 'allowed')::boolean, false,
    'per IP, one second before Retry-After is refused');
select crypto.clock_set('2026-11-24 10:01:30+09');
select is((api.rate_limit('6.6.6.6', null, '{}') ->> 'allowed')::boolean, true,
    'per IP, Retry-After (80 s after a refusal at 10:00:10) is allowed');

-- The gate before a call in the request's transaction (db._run_gated):
-- it counts, answers as the limiter does, and lets the guarded call run or
-- not; refused requests count too.
select crypto.clock_set('2026-11-24 11:00:10+09');
create temp table gate_answers (n serial, answer json);
insert into gate_answers (answer) select api.rate_limit_gate('7.7.7.7', null, '{}');
insert into gate_answers (answer) select api.rate_limit_gate('7.7.7.7', null, '{}');
insert into gate_answers (answer) select api.rate_limit_gate('7.7.7.7', null, '{}');
insert into gate_answers (answer) select api.rate_limit_gate('7.7.7.7', null, '{}');
select is(
    (select array_agg((answer ->> 'allowed') || '/' || (answer -> 'tightest' ->> 'remaining') order by n)
     from gate_answers),
    array['true/2', 'true/1', 'true/0', 'false/0'],
    'the gate counts and answers as the limiter does'
);
select is(current_setting('oxp.rate_limit', true), '',
    'a refusal leaves the call''s guard closed');
-- The statement db.call_api sends after the gate (db.GUARD): a call with a
-- side effect (a count of its own) does not run at all.
select api.rate_limit('8.8.8.8', null, '{}') where current_setting('oxp.rate_limit', true) = 'allowed';
select is((select count(*)::int from crypto.rate_limits where bucket = 'ip:8.8.8.8'), 0,
    'after a refusal the guarded call never runs');
select is((select hits from crypto.rate_limits where bucket = 'ip:7.7.7.7'), 4,
    'the refused request counts (refusing is no error, so nothing undoes it)');
select api.rate_limit_note('7.7.7.7', null, '{}');
select is((select hits from crypto.rate_limits where bucket = 'ip:7.7.7.7'), 4,
    'the note, kept for the API before 0036, counts nothing: the gate counted');
select api.rate_limit_gate('9.9.9.9', :'u', array['point_reads']);
select is(current_setting('oxp.rate_limit', true), 'allowed',
    'an allowed request opens the guard');
select is(
    (select array_agg(split_part(bucket, ':', 1) || '/' || (shard = pg_backend_pid()) order by bucket)
     from crypto.rate_limits
     where bucket in ('ip:9.9.9.9', 'point_reads:minute:' || :'u') and window_start = '2026-11-24 11:00:00+09'),
    array['ip/true', 'point_reads/false'],
    'the gate counts the IP in this session''s own row, the user''s point read in the player''s one row'
);

-- Other sessions' rows of one IP (written here as other backends would):
-- the count is their sum, and this session's row is added to, not theirs.
update crypto.settings set value = '5' where key = 'ratelimit.ip_per_minute';
select crypto.clock_set('2026-11-24 12:00:10+09');
insert into crypto.rate_limits (bucket, window_start, shard, hits)
values ('ip:6.6.6.6', '2026-11-24 12:00:00+09', pg_backend_pid() + 1, 2),
    ('ip:6.6.6.6', '2026-11-24 12:00:00+09', pg_backend_pid() + 2, 1);
select is(
    (select array_agg((api.rate_limit_gate('6.6.6.6', null, '{}') ->> 'allowed')::boolean)
     from generate_series(1, 3)),
    array[true, true, false],
    'three counted by two other sessions: two more fit in five, the third is refused'
);
select is(
    (select array_agg(hits order by shard) from crypto.rate_limits
     where bucket = 'ip:6.6.6.6' and window_start = '2026-11-24 12:00:00+09'),
    array[3, 2, 1],
    'this session counted its three in its own row'
);
-- The previous window is summed over its shards too: 6 in 12:00 weigh 3 at 12:01:30.
select crypto.clock_set('2026-11-24 12:01:30+09');
select is(
    (select array_agg((api.rate_limit('6.6.6.6', null, '{}') ->> 'allowed')::boolean)
     from generate_series(1, 3)),
    array[true, true, false],
    'half of the six of the minute before still counts: two more fit in five'
);

-- Leases (gate.Leases): a share of the limit the asking process may let
-- through on its own, reserved in the count at once where requests count.
update crypto.settings set value = '20' where key = 'ratelimit.ip_per_minute';
update crypto.settings set value = '0.5' where key = 'ratelimit.lease_share';
select crypto.clock_set('2026-11-24 13:00:10+09');
create temp table leases (n serial, answer json);
insert into leases (answer) select api.rate_limit_gate('4.4.4.4', null, '{}', '{ip}');
insert into leases (answer) select api.rate_limit_gate('4.4.4.4', null, '{}', '{}');
insert into leases (answer) select api.rate_limit_gate('4.4.4.4', null, '{}', '{ip}');
insert into leases (answer) select api.rate_limit_gate('4.4.4.4', null, '{}', '{ip}');
select is(
    (select array_agg(coalesce(answer -> 'leases' -> 'ip' ->> 'n', '-') order by n) from leases),
    array['10', '-', '7', '-'],
    'half the limit, then no more than is left after the request, then none once refused'
);
select is((select sum(hits)::int from crypto.rate_limits where bucket = 'ip:4.4.4.4'), 21,
    'the leased requests are counted when granted: 1 + 10, 1, 1 + 7, and the refused one');
select is(
    (select (answer ->> 'allowed')::boolean from leases where n = 4), false,
    'with every lease reserved, the limit holds: nothing is let through past it'
);
select is(
    (select answer -> 'leases' -> 'ip' ->> 'remaining' from leases where n = 1), '19',
    'a lease says what this client has left after its request (its own lease included)'
);
-- Predictions are not the gate's: asked for a prediction lease, it grants none.
select gen_random_uuid() as p \gset
update crypto.settings set value = '1000' where key = 'ratelimit.predictions_per_minute';
select ok(
    (api.rate_limit_gate('4.4.4.5', :'p', array['predictions'], '{predictions}') -> 'leases' -> 'predictions') is null,
    'no prediction lease, even under a limit of 1000 a minute'
);

select * from finish();
rollback;
