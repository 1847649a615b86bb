begin;
select plan(4);

-- The worker's beat for the replicas: one row, its time the wall clock's
-- (a lag is real seconds, whatever day crypto.now() shows).
select crypto.clock_set('2030-01-02 10:00+09');
set local role oxp_service;
select crypto.replica_heartbeat();
select crypto.replica_heartbeat();
reset role;
select is((select count(*) from crypto.replica_heartbeat), 1::bigint, 'one row, however often it beats');
select ok((select beat_at > clock_timestamp() - interval '1 minute' and beat_at <= clock_timestamp()
    from crypto.replica_heartbeat), 'at the wall clock''s time, not the game clock''s');

-- Nobody but the worker beats.
set local role app_user;
select throws_ok('select crypto.replica_heartbeat()', '42501', null, 'a player cannot beat');
reset role;
set local role auditor;
select throws_ok('select crypto.replica_heartbeat()', '42501', null, 'nor the auditor');
reset role;

select * from finish();
rollback;
