begin;
select plan(9);

-- The issue's reproduction: `oxp clock show` (oxp_service) and the
-- auditor's `select crypto.now()` failed with "permission denied for
-- function setting". Every role reads the one clock, shifted or not.
select crypto.clock_set('2026-11-24 09:00+09');
set local role anon;
select is(crypto.now(), '2026-11-24 09:00+09'::timestamptz, 'anon reads the clock');
reset role;
set local role app_user;
select is(crypto.now(), '2026-11-24 09:00+09'::timestamptz, 'app_user reads the clock');
reset role;
set local role app_admin;
select is(crypto.now(), '2026-11-24 09:00+09'::timestamptz, 'app_admin reads the clock');
reset role;
set local role oxp_service;
select is(crypto.kst(crypto.now()), '2026-11-24T09:00:00+09:00', 'oxp_service reads the clock (oxp clock show)');
reset role;
set local role auditor;
select is(crypto.now(), '2026-11-24 09:00+09'::timestamptz, 'the auditor reads the clock');

-- Least privilege: reading the clock opens nothing else.
select throws_ok($$ select crypto.setting('environment') $$, '42501', null,
    'the auditor still cannot run crypto.setting()');
reset role;
set local role anon;
select throws_ok($$ select crypto.setting('clock.offset_seconds') $$, '42501', null,
    'anon cannot run crypto.setting()');
select throws_ok($$ select * from crypto.settings $$, '42501', null, 'anon cannot read the settings');
reset role;
select is(
    (select p.prosecdef from pg_proc as p where p.oid = 'crypto.now()'::regprocedure), true,
    'crypto.now() reads its offset as the owner (SECURITY DEFINER)'
);

select * from finish();
rollback;
