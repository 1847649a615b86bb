begin;
select plan(38);

-- The ledger is partitioned by month of created_at (sql/0041); a transfer's
-- key, unique for all time, is its own unpartitioned row (sql/0040), which
-- hands out the transfer's id. Money: no month is ever dropped.
select is(pg_get_partkeydef('crypto.ledger_transfers'::regclass), 'RANGE (created_at)', 'transfers by month');
select is(pg_get_partkeydef('crypto.ledger_entries'::regclass), 'RANGE (created_at)', 'entries by month');
select col_is_pk('crypto', 'ledger_transfers', array['id', 'created_at'], 'a transfer''s key holds the partition key');
select col_is_pk('crypto', 'ledger_transfer_keys', array['transfer_id'], 'a key names its transfer''s id');
select col_is_unique('crypto', 'ledger_transfer_keys', array['idempotency_key'], 'and is unique for all time');
select is(
    (select pg_get_constraintdef(c.oid) from pg_constraint as c
     where c.conrelid = 'crypto.ledger_entries'::regclass and c.confrelid = 'crypto.ledger_transfers'::regclass),
    null,
    'an entry has no foreign key to the partitioned transfers (35 us an entry: integrity checks it)'
);
select is(
    (select array_agg(c.conrelid::regclass::text || '.' || a.attname order by c.conrelid::regclass::text, a.attname)
     from pg_constraint as c
     join pg_attribute as a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
     where c.contype = 'f' and c.confrelid = 'crypto.ledger_transfer_keys'::regclass and c.conparentid = 0),
    array[
        'crypto.ad_unlocks.transfer_id', 'crypto.correction_transfers.transfer_id',
        'crypto.rewards_redemptions.debit_transfer_id', 'crypto.rewards_redemptions.refund_transfer_id'
    ],
    'what names a transfer by id points at the keys'
);
-- The ledger's own rows are checked against their keys once a statement
-- (sql/0044): a foreign key's check a row cost a day's awards seconds.
select is(
    (select array_agg(t.tgrelid::regclass::text || ' ' || p.proname order by t.tgname)
     from pg_trigger as t join pg_proc as p on p.oid = t.tgfoid
     where t.tgname in ('ledger_transfers_keyed', 'ledger_entries_keyed')
         and t.tgtype = (1 << 2)  -- AFTER INSERT FOR EACH STATEMENT
         and t.tgnewtable = 'new_rows' and t.tgenabled = 'O' and t.tgparentid = 0),
    array['crypto.ledger_entries tg_ledger_entries__keyed', 'crypto.ledger_transfers tg_ledger_transfers__keyed'],
    'every transfer and entry is checked against its key, after each statement'
);
select is(to_regclass('crypto.ledger_transfers_default'), null, 'transfers have no default partition');
select is(to_regclass('crypto.ledger_entries_default'), null, 'nor do entries');

select tests.load_calendar();
select tests.create_user('p@example.com') as p \gset
select crypto.user_account(:'p') as acct \gset
select crypto.system_account('adjustments') as adj \gset

-- A transfer in March, one in November: each in its month, with its key.
select crypto.clock_set('2026-03-05 12:00Z');
select (crypto.ledger_transfer('t:mar', :adj, :acct, 30, 'adjustment')).id as mar \gset
select crypto.clock_set('2026-11-24 12:00Z');
select (crypto.ledger_transfer('t:nov', :acct, :adj, 10, 'adjustment')).id as nov \gset
select is(
    (select array_agg(tableoid::regclass::text order by id) from crypto.ledger_transfers where id in (:mar, :nov)),
    array['crypto.ledger_transfers_p2026_03', 'crypto.ledger_transfers_p2026_11'],
    'each transfer sits in its month'
);
select is(
    (select array_agg(tableoid::regclass::text order by id) from crypto.ledger_entries where transfer_id = :nov),
    array['crypto.ledger_entries_p2026_11', 'crypto.ledger_entries_p2026_11'],
    'and its two entries in the same month'
);
select is(
    (select array_agg(k.idempotency_key || ' ' || to_char(k.created_at at time zone 'UTC', 'YYYY-MM-DD') order by k.transfer_id)
     from crypto.ledger_transfer_keys as k where k.transfer_id in (:mar, :nov)),
    array['t:mar 2026-03-05', 't:nov 2026-11-24'],
    'its key names its id and time'
);
select cmp_ok(:nov::bigint, '>', :mar::bigint, 'ids come from the keys'' one identity');

-- A retry months later finds the transfer in its month and moves nothing.
select is((crypto.ledger_transfer('t:mar', :adj, :acct, 30, 'adjustment')).id, :mar::bigint, 'a retry months later is the same transfer');
select is((select balance from crypto.ledger_accounts where id = :acct), 20::bigint, 'and moves nothing');
select throws_ok(
    format($$ select crypto.ledger_transfer('t:mar', %s, %s, 31, 'adjustment') $$, :adj, :acct),
    'OX007', null, 'the key with another request is still refused'
);
select is((crypto.ledger_transfer_by_id(:mar)).idempotency_key, 't:mar', 'a transfer is found by its id alone');

-- The batch form claims keys the same way; its replay pays nothing.
select crypto.system_account('issuance') as iss \gset
select is(
    crypto.ledger_credit_many(:iss, 'settlement_award', array['b:1', 'b:2'], array[:acct, :acct]::bigint [], array[5, 7]::bigint []),
    2, 'a batch pays its credits'
);
select is(
    crypto.ledger_credit_many(:iss, 'settlement_award', array['b:1', 'b:2'], array[:acct, :acct]::bigint [], array[5, 7]::bigint []),
    0, 'its replay pays none'
);
select is(
    (select count(*)::int from crypto.ledger_transfer_keys as k
     join crypto.ledger_transfers as t on t.id = k.transfer_id and t.created_at = k.created_at
     where k.idempotency_key in ('b:1', 'b:2') and t.idempotency_key = k.idempotency_key),
    2, 'each batch transfer has its key'
);
select is_empty(
    $$ select * from crypto.integrity_violations() where check_name in (
        'transfer_entries', 'transfer_key', 'ledger_sum', 'balance_mismatch', 'balance_chain', 'negative_balance'
    ) $$,
    'the books balance across months'
);

-- What the keys guard, even for a writer past the functions (the owner).
select throws_ok(
    format($$ insert into crypto.ledger_transfers (id, idempotency_key, debit_account_id, credit_account_id,
        amount, reason, created_at) values (-7, 'x:nokey', %s, %s, 1, 'adjustment', now()) $$, :adj, :acct),
    '23503', null, 'no transfer without its key'
);
select throws_ok(
    format($$ insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
        values (-99, %s, 1, 1, now()) $$, :acct),
    '23503', null, 'no entry of a transfer that was never keyed'
);
select throws_ok(
    format($$ with k as (
            insert into crypto.ledger_transfer_keys (idempotency_key, created_at) values ('x:mine', now())
            returning transfer_id, created_at
        )
        insert into crypto.ledger_transfers (id, idempotency_key, debit_account_id, credit_account_id,
            amount, reason, created_at)
        select k.transfer_id, 'x:other', %s, %s, 1, 'adjustment', k.created_at from k $$, :adj, :acct),
    '23503', 'a transfer without its key', 'no transfer under a key other than its id''s'
);
select throws_ok(
    format($$ insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
        values (%s, %s, 1, 1, '2026-11-24 12:00Z') $$, :mar, :acct),
    '23503', 'an entry without its transfer''s key', 'no entry at another time than its transfer'
);
select throws_ok(
    format($$ insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
        values (%1$s, %2$s, 1, 1, '2026-11-24 12:00Z'), (-99, %2$s, 1, 1, now()) $$, :nov, :acct),
    '23503', null, 'a statement with one entry unkeyed among keyed ones is refused whole'
);
-- A month written by its partition's name (only the owner can) skips the
-- statement's check; the nightly integrity run reads every row.
savepoint elsewhere;
insert into crypto.ledger_entries_p2026_11 (id, transfer_id, account_id, amount, balance_after, created_at)
values (nextval(pg_get_serial_sequence('crypto.ledger_entries', 'id')), :mar, :acct, 1, 1, '2026-11-24 12:00Z');
select is(
    (select count(*)::int from crypto.integrity_violations() where check_name = 'transfer_entries'),
    1, 'an entry in another month than its transfer is an integrity violation'
);
rollback to savepoint elsewhere;
insert into crypto.ledger_transfer_keys (idempotency_key, created_at) values ('x:orphan', now());
select is(
    (select count(*)::int from crypto.integrity_violations() where check_name = 'transfer_key'),
    1, 'a key without its transfer is an integrity violation'
);

-- Append-only on every month, by the parent or by a partition's name.
select throws_ok('update crypto.ledger_transfer_keys set created_at = now()', 'OX003', null, 'keys are append-only');
select throws_ok('truncate crypto.ledger_transfers_p2026_03', 'OX003', null, 'a transfers month cannot be truncated by name');
select throws_ok('truncate crypto.ledger_entries_p2026_11', 'OX003', null, 'nor an entries month');

-- Money is never dropped: a clock 500 days ahead keeps every month, and
-- a transfer there lands in a month made for it, guarded like the rest.
select crypto.clock_set(now() + interval '500 days');
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select is(
    (select count(*)::int from crypto.ledger_transfers where id in (:mar, :nov)), 2,
    'no transfer is dropped 500 days ahead'
);
select crypto.ledger_transfer('t:far', :adj, :acct, 1, 'adjustment');
select throws_ok(
    format('truncate crypto.ledger_entries_p%s', to_char(now() at time zone 'UTC' + interval '500 days', 'YYYY_MM')),
    'OX003', null, 'a month made later refuses TRUNCATE too'
);
select crypto.clock_reset();

-- Through the parent only: a player reads their own entries, no partition.
select tests.authenticate_as(:'p');
select is((select count(*)::int from crypto.ledger_entries), 5, 'a player reads their own entries (and no system one)');
select throws_ok('select * from crypto.ledger_entries_p2026_11', '42501', null, 'but no partition by its name');
select tests.clear_authentication();

-- A transfer is dated when its transaction began: one begun long ago (an
-- operator's session left open) is refused, so the nightly check's day of
-- overlap reads it (here with a bound of 0 s, a transaction being older).
select lives_ok('select crypto.require_fresh_transaction()', 'a transaction begun just now moves points');
select pg_sleep(0.01);
select throws_ok(
    $$ select crypto.require_fresh_transaction('0 seconds') $$, 'OX000', null,
    'one older than the bound is told to begin again'
);

select * from finish();
rollback;
