begin;
select plan(16);

-- Cold storage of the ledger's old months (sql/0045, plpgsql/cold_storage.sql):
-- who may take a step, what is refused, and that a refusal changes nothing.
-- The whole path (a real drill, the swap beside a writer) is
-- tests/python/test_cold_storage.py: a tablespace cannot be made in a
-- transaction.
select crypto.partition_ensure('crypto.ledger_entries', now() - interval '500 days', 1);
select 'ledger_entries_p' || to_char(now() at time zone 'UTC' - interval '500 days', 'YYYY_MM') as old_part,
    'ledger_entries_p' || to_char(now() at time zone 'UTC', 'YYYY_MM') as now_part \gset

set local role app_user;
select throws_ok(format($$ select crypto.cold_step(%L) $$, :'old_part'), '42501', null,
    'a player cannot move a month');
select throws_ok($$ select * from crypto.cold_months $$, '42501', null, 'nor read the record');
set local role auditor;
select throws_ok(format($$ select crypto.cold_step(%L) $$, :'old_part'), '42501', null, 'nor the auditor');
select throws_ok($$ select crypto.cold_backed_up('[]', 'x') $$, '42501', null,
    'who cannot say what a backup holds either');
select lives_ok($$ select * from crypto.cold_months $$, 'the auditor reads the record');
reset role;
select ok(
    not has_table_privilege('oxp_service', 'crypto.cold_months', 'insert, update, delete')
    and not has_table_privilege('oxp_operator', 'crypto.cold_months', 'insert, update, delete'),
    'no role writes the record but through the steps'
);

-- The worker's login, without the job's claim.
set local role oxp_service;
select throws_ok(format($$ select crypto.cold_step(%L) $$, :'old_part'), 'OX265', 'JOB_LEASE_LOST',
    'no month moves but by the worker holding a partition.cold job');
select throws_ok($$ select crypto.cold_backed_up('[]', 'x') $$, 'OX265', 'JOB_LEASE_LOST',
    'no backup vouches for a month but through the drill''s job');
select throws_ok($$ select crypto.cold_backed_up('{}', 'x') $$, 'OX000', 'VALIDATION_FAILED',
    'the drill reports a list');
reset role;

insert into crypto.jobs (kind, status, attempts, run_after, locked_at, claimed_pid, created_at)
values ('partition.cold', 'running', 1, now(), now(), pg_backend_pid(), now());
set local role oxp_service;
select throws_ok(format($$ select crypto.cold_step(%L) $$, :'now_part'), 'OX181', 'COLD_NOT_DUE',
    'this month never moves');
select throws_ok($$ select crypto.cold_step('audit_logs_p2020_01') $$, 'OX181', 'COLD_NOT_DUE',
    'nor an audit month');
select throws_ok($$ select crypto.cold_step('ledger_entries_p2020_01; drop table crypto.users') $$, 'OX181',
    'COLD_NOT_DUE', 'nor a name that is no due month');
reset role;
select is_empty($$ select * from crypto.cold_months $$, 'the refusals recorded nothing');
select is(
    (select count(*)::int from pg_trigger where tgname = 'cold_frozen'), 0, 'and froze nothing'
);

-- An operator may do the worker's work, but not vouch for a backup: a
-- drill's job claimed by an operator's own login is refused.
create role tests_cold_operator login in role oxp_operator;
insert into crypto.jobs (kind, status, attempts, run_after, locked_at, claimed_pid, created_at)
values ('backup.verify', 'running', 1, now(), now(), pg_backend_pid(), now());
set local session authorization tests_cold_operator;
select throws_ok($$ select crypto.cold_backed_up('[]', 'forged') $$, '42501', 'FORBIDDEN',
    'an operator''s login cannot say what a restored backup holds');
reset session authorization;
set local session authorization oxp_service;
select is(crypto.cold_backed_up('[]', 'x'), 0, 'the worker''s own login, holding the drill''s job, may (nothing to vouch for here)');
reset session authorization;

select * from finish();
rollback;
