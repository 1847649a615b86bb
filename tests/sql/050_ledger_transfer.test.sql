begin;
select plan(21);

select tests.create_user('a@example.com') as a \gset
select tests.create_user('b@example.com') as b \gset
select crypto.system_account('issuance') as issuance \gset
select crypto.user_account(:'a') as acct_a \gset
select crypto.user_account(:'b') as acct_b \gset

select (crypto.ledger_transfer('test:1', :issuance, :acct_a, 500, 'adjustment')).id as t1 \gset
select is((select balance from crypto.ledger_accounts where id = :acct_a), 500::bigint, 'credit raises the balance');
select results_eq(
    format('select amount, balance_after from crypto.ledger_entries where transfer_id = %s order by amount', :t1),
    $$ values (-500::bigint, null::bigint), (500::bigint, 500::bigint) $$,
    'two entries: the system side keeps no running balance, the user side does'
);
select is(
    (crypto.ledger_transfer('test:1', :issuance, :acct_a, 500, 'adjustment')).id, :t1::bigint,
    'the same key and request return the first transfer'
);
select is((select balance from crypto.ledger_accounts where id = :acct_a), 500::bigint, '... and move nothing');
select throws_ok(
    format($$ select crypto.ledger_transfer('test:1', %s, %s, 501, 'adjustment') $$, :issuance, :acct_a),
    'OX007', 'IDEMPOTENCY_KEY_REUSED', 'the same key with another amount is refused'
);
select throws_ok(
    format($$ select crypto.ledger_transfer('test:1', %s, %s, 500, 'adjustment') $$, :issuance, :acct_b),
    'OX007', 'IDEMPOTENCY_KEY_REUSED', 'the same key to another account is refused'
);

select crypto.ledger_transfer('test:2', :acct_a, :acct_b, 200, 'gift');
select is((select balance from crypto.ledger_accounts where id = :acct_a), 300::bigint, 'debit lowers the balance');
select is((select balance from crypto.ledger_accounts where id = :acct_b), 200::bigint, 'between users');

-- A refusal is a result: stored under its key, with no entries.
select is(
    (crypto.ledger_transfer('test:3', :acct_a, :acct_b, 301, 'gift')).refusal, 'OX201',
    'a balance never goes below zero: the transfer is refused'
);
select is(
    (select count(*)::int from crypto.ledger_entries as e
     join crypto.ledger_transfers as t on t.id = e.transfer_id where t.idempotency_key = 'test:3'),
    0, 'a refused transfer moves nothing'
);
select crypto.ledger_transfer('test:top-up', :issuance, :acct_a, 1000, 'adjustment');
select is(
    (crypto.ledger_transfer('test:3', :acct_a, :acct_b, 301, 'gift')).refusal, 'OX201',
    'the same key keeps its refusal even once the balance would allow it'
);
select is((select balance from crypto.ledger_accounts where id = :acct_a), 1300::bigint, '... and still moves nothing');
select throws_ok(
    format($$ select crypto.raise_refusal(crypto.ledger_transfer('test:3', %s, %s, 301, 'gift')) $$, :acct_a, :acct_b),
    'OX201', 'INSUFFICIENT_POINTS', 'a caller turns the refusal into its error'
);

select throws_ok(
    format($$ select crypto.ledger_transfer('test:4', %s, %s, 0, 'gift') $$, :acct_a, :acct_b),
    'OX000', 'VALIDATION_FAILED', 'only positive amounts move'
);
select throws_ok(
    format($$ select crypto.ledger_transfer('test:5', %s, %s, 1, 'gift') $$, :acct_a, :acct_a),
    'OX000', 'VALIDATION_FAILED', 'an account cannot pay itself'
);
select is((select sum(amount)::bigint from crypto.ledger_entries), 0::bigint, 'entries sum to zero');
select is(
    (select count(*)::int from crypto.audit_logs where action = 'points.transfer' and subject like 'test:%'), 3,
    'each movement is in the audit log; refusals and replays are not movements'
);

-- History is append-only even for the owner.
select throws_ok('update crypto.ledger_entries set amount = 1', 'OX003', 'FORBIDDEN', 'entries cannot be edited');
select throws_ok('truncate crypto.ledger_transfers cascade', 'OX003', 'FORBIDDEN', 'the ledger cannot be truncated');
select throws_ok('truncate crypto.settlements cascade', 'OX003', 'FORBIDDEN', 'nor can the settlements');
select results_eq(
    $$
    select c.relname::text collate "C" from pg_trigger as t join pg_class as c on c.oid = t.tgrelid
    where t.tgname::text = c.relname::text || '_no_truncate' and t.tgfoid = 'crypto.tg_append_only__refuse'::regproc
    and exists (
        select from pg_trigger as r where r.tgrelid = t.tgrelid and r.tgname::text = c.relname::text || '_append_only'
    )
    order by 1
    $$,
    $$ values ('audit_logs' collate "C"), ('correction_transfers'), ('eod_price_corrections'), ('ledger_entries'),
        ('ledger_transfer_keys'), ('ledger_transfers'), ('ledger_verifications'), ('partition_archives'), ('settlement_corrections'), ('settlement_revisions'), ('settlements') $$,
    'every history table refuses UPDATE, DELETE and TRUNCATE (plpgsql/append_only.sql)'
);

select * from finish();
rollback;
