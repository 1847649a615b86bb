begin;
select plan(13);

select crypto.audit('test', 'test.first', 'a', '{"n": 1}') as first \gset
select crypto.audit('test', 'test.second', 'b', '{"n": 2}') as second \gset
select is((select count(*)::int from crypto.audit_logs where hash is null), 2, 'a new row waits to be sealed');
select is(crypto.audit_seal(), 2, 'the sealer links the rows that can no longer change');
select is(crypto.audit_seal(), 0, 'and each only once');

select is(
    (select prev_hash from crypto.audit_logs where id = :second),
    (select hash from crypto.audit_logs where id = :first),
    'each row carries the previous row''s hash'
);
select is(
    (select hash from crypto.audit_logs where id = :second),
    (select crypto.audit_hash(prev_hash, at, actor, action, subject, details) from crypto.audit_logs where id = :second),
    'the hash covers the previous hash and the row''s content'
);
select isnt(
    crypto.audit_hash(null, now(), 'test', 'test.first', 'a', '{"n": 1}'),
    crypto.audit_hash(null, now(), 'test', 'test.first', 'a', '{"n": 2}'),
    'a changed detail changes the hash'
);
select throws_ok(
    format('delete from crypto.audit_logs where id = %s', :first), 'OX003', 'FORBIDDEN', 'audit rows cannot be deleted'
);

select crypto.audit('test', 'test.third', 'c', '{"n": 3}') as third \gset
select crypto.audit_seal();
select is(crypto.audit_verify() ->> 'ok', 'true', 'an untouched chain verifies');

-- A superuser can get past the trigger; the chain still tells.
set local session_replication_role = replica;
update crypto.audit_logs set details = '{"n": 20}' where id = :second;
select is(crypto.audit_verify() -> 'first_bad', jsonb_build_object('id', :second, 'problem', 'the row does not match its hash'),
    'an edited row is named');
update crypto.audit_logs set details = '{"n": 2}' where id = :second;
select is(crypto.audit_verify() ->> 'ok', 'true', 'undoing the edit restores the chain');
delete from crypto.audit_logs where id = :second;
select is(crypto.audit_verify() -> 'first_bad', jsonb_build_object('id', :third, 'problem', 'a row before it in the chain is missing'),
    'a removed row breaks the link of the next one');
set local session_replication_role = origin;

-- Admin actions land in the trail: the clock, session moves, stock.
select tests.load_calendar();
select crypto.clock_set('2026-11-24 09:00:00+09');
select tests.open_session('2026-11-24');
select crypto.close_session('2026-11-24');
select crypto.upsert_reward('MUG', 'A mug', 1, 1);
select results_eq(
    $$ select action, subject from crypto.audit_logs where action in ('session.closed', 'reward.upsert') order by id $$,
    $$ values ('session.closed', '2026-11-24'), ('reward.upsert', 'MUG') $$,
    'session moves and inventory changes are audited'
);
select is((select count(*)::int from crypto.audit_logs where action = 'clock.set'), 2, 'so is every clock shift');

select * from finish();
rollback;
