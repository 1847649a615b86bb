begin;
select plan(26);

-- The nightly run reads the ledger written since its last clean run, less
-- a day, continuing each player's balance chain from their checkpoint; it
-- reads everything weekly, when asked, and until a full run has been clean.
select tests.load_calendar();
select tests.create_user('a@example.com') as a \gset
select tests.create_user('b@example.com') as b \gset
select crypto.user_account(:'a') as acct_a \gset
select crypto.user_account(:'b') as acct_b \gset
select crypto.system_account('adjustments') as adj \gset
-- Audited adjustments (an adjustment's cause is its admin action).
create function pg_temp.adjust(p_key text, p_account bigint, p_amount bigint) returns bigint
language sql as $$
    select (crypto.adjust_points(
        (select u.email from crypto.users as u join crypto.ledger_accounts as a on a.user_id = u.id where a.id = p_account),
        p_amount, 'test', p_key
    ) ->> 'transfer_id')::bigint
$$;
create function pg_temp.ledger_found() returns bigint
language sql as $$
    select (h.details ->> 'violations')::bigint from crypto.system_health as h where h.check_name = 'integrity'
    order by h.id desc limit 1
$$;
create function pg_temp.last_run() returns crypto.ledger_verifications
language sql as $$ select * from crypto.ledger_verifications order by id desc limit 1 $$;

-- October: history, then the first run, which reads everything.
select crypto.clock_set('2026-10-05 12:00Z');
select pg_temp.adjust('a1', :acct_a, 100);
select pg_temp.adjust('b1', :acct_b, 50);
select pg_temp.adjust('a2', :acct_a, -30);
select crypto.run_integrity_check();
select is((pg_temp.last_run()).since, '-infinity'::timestamptz, 'the first run reads everything');
select is(pg_temp.ledger_found(), 0::bigint, 'and finds the ledger whole');
select is(
    (select array_agg(c.balance order by c.account_id) from crypto.ledger_checkpoints as c),
    array[70, 50]::bigint [], 'each player''s checkpoint is their verified balance'
);
select is(
    (select c.entry_id from crypto.ledger_checkpoints as c where c.account_id = :acct_a),
    (select max(e.id) from crypto.ledger_entries as e where e.account_id = :acct_a),
    'at their last entry'
);

-- Three days on: only what was written since the last clean run (less a day)
-- is read, and the chain goes on from the checkpoint.
select crypto.clock_set('2026-10-06 12:00Z');
select pg_temp.adjust('a3', :acct_a, 5);
select pg_temp.adjust('a4', :acct_a, -2);
select crypto.run_integrity_check();
select is((pg_temp.last_run()).since, '2026-10-04 12:00Z'::timestamptz, 'the next run reads from a day before the last');
select is(pg_temp.ledger_found(), 0::bigint, 'a chain continued from its checkpoint is whole');
select is(
    (select c.balance from crypto.ledger_checkpoints as c where c.account_id = :acct_a), 73::bigint,
    'and the checkpoint moves on'
);
select is((pg_temp.last_run()).accounts_advanced, 1, 'for the player who moved points only');
select crypto.clock_set('2026-10-07 12:00Z');
select pg_temp.adjust('b2', :acct_b, 1);
select crypto.run_integrity_check();
select is((pg_temp.last_run()).since, '2026-10-05 12:00Z'::timestamptz, 'then only since the last run');
select is(pg_temp.ledger_found(), 0::bigint, 'still whole');

-- What only a superuser could do. An old entry broken is out of the
-- nightly read (it was verified), not out of the weekly one.
set local session_replication_role = replica;
update crypto.ledger_entries set balance_after = balance_after + 1
where id = (select min(e.id) from crypto.ledger_entries as e where e.account_id = :acct_b);
select crypto.clock_set('2026-10-08 12:00Z');
select crypto.run_integrity_check();
select is(pg_temp.ledger_found(), 0::bigint, 'an entry verified before is not re-read nightly');
select cmp_ok(crypto.run_integrity_check(true), '>', 0, 'a full run (asked for) finds it');
select is(
    (select count(*)::int from jsonb_array_elements(
        (select h.details -> 'first' from crypto.system_health as h where h.check_name = 'integrity'
         order by h.id desc limit 1)) as v where v ->> 'check_name' = 'balance_chain'),
    1, 'as a broken balance chain'
);
update crypto.ledger_entries set balance_after = balance_after - 1
where id = (select min(e.id) from crypto.ledger_entries as e where e.account_id = :acct_b);

-- A new entry broken is found, and a run that found anything moves no
-- checkpoint: the next run reads from the last clean one again.
select crypto.clock_set('2026-10-09 12:00Z');
select pg_temp.adjust('a5', :acct_a, 4) as a5 \gset
update crypto.ledger_entries set balance_after = balance_after + 9 where transfer_id = :a5 and account_id = :acct_a;
select (select c.entry_id from crypto.ledger_checkpoints as c where c.account_id = :acct_a) as before_entry \gset
select cmp_ok(crypto.run_integrity_check(), '>', 0, 'a broken new entry is found nightly');
select is(
    (select c.entry_id from crypto.ledger_checkpoints as c where c.account_id = :acct_a), :before_entry::bigint,
    'and no checkpoint moves'
);
update crypto.ledger_entries set balance_after = balance_after - 9 where transfer_id = :a5 and account_id = :acct_a;
select crypto.clock_set('2026-10-10 12:00Z');
select crypto.run_integrity_check();
select is((pg_temp.last_run()).since, '2026-10-07 12:00Z'::timestamptz, 'the next run reads from a day before the last clean run');
select is(pg_temp.ledger_found(), 0::bigint, 'and, mended, finds it whole again');

-- A stored balance changed without an entry is found nightly, for a
-- player with no new entry too: it is held against the checkpoint.
update crypto.ledger_accounts set balance = balance + 1 where id = :acct_b;
select crypto.clock_set('2026-10-11 12:00Z');
select crypto.run_integrity_check();
select is(
    (select count(*)::int from jsonb_array_elements(
        (select h.details -> 'first' from crypto.system_health as h where h.check_name = 'integrity'
         order by h.id desc limit 1)) as v where v ->> 'check_name' = 'balance_mismatch'),
    1, 'a stored balance off its checkpoint is found nightly'
);
update crypto.ledger_accounts set balance = balance - 1 where id = :acct_b;
set local session_replication_role = origin;

-- Weekly: once the last clean full run is a week old, the run is full.
select crypto.clock_set('2026-10-13 12:00Z');
select crypto.run_integrity_check();
select is((pg_temp.last_run()).since, '-infinity'::timestamptz, 'a week after the last full run, the run reads everything');
select is(pg_temp.ledger_found(), 0::bigint, 'whole');

-- Who may not. A forged key would make an award be skipped as paid, a
-- forged checkpoint or clean run would move what the nightly run trusts:
-- only the owner's functions write them, and only the service and the
-- auditor read them.
select is_empty(
    $$ select r, t, p
       from unnest(array['anon', 'app_user', 'app_admin', 'auth_service', 'ad_network', 'oxp_service',
           'oxp_operator', 'auditor', 'authenticator', 'admin_authenticator']) as r,
           unnest(array['crypto.ledger_transfer_keys', 'crypto.ledger_checkpoints', 'crypto.ledger_verifications']) as t,
           unnest(array['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) as p
       where has_table_privilege(r, t, p) $$,
    'no role writes the transfer keys, the checkpoints or the runs'
);
select is_empty(
    $$ select r, t
       from unnest(array['anon', 'app_user', 'app_admin', 'auth_service', 'ad_network',
           'authenticator', 'admin_authenticator']) as r,
           unnest(array['crypto.ledger_transfer_keys', 'crypto.ledger_checkpoints', 'crypto.ledger_verifications']) as t
       where has_table_privilege(r, t, 'SELECT') $$,
    'nor reads them but the service (and the operator''s CLI, its member) and the auditor'
);
select throws_ok('update crypto.ledger_verifications set violations = 0', 'OX003', null, 'the runs are append-only');
select tests.authenticate_as(:'a');
select throws_ok('select crypto.run_integrity_check()', '42501', null, 'a player cannot run the check');
select throws_ok('select * from crypto.ledger_checkpoints', '42501', null, 'nor read the checkpoints');
select tests.clear_authentication();
set local role auditor;
select throws_ok(
    $$ select * from crypto.integrity_violations('2026-11-01'::timestamptz) $$, '42501', null,
    'the auditor reads everything (integrity_violations()), not a part of its choosing'
);
reset role;

select * from finish();
rollback;
