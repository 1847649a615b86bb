begin;
select plan(16);

-- Each rule of the money tables is a constraint: it holds even for a writer
-- that bypasses every function (here the owner, with triggers off).
set local session_replication_role = replica;
select tests.create_user('c@example.com') as u \gset
select crypto.user_account(:'u') as acct \gset
select crypto.system_account('issuance') as sys \gset

select throws_ok(format('update crypto.ledger_accounts set balance = -1 where id = %s', :acct),
    '23514', null, 'a user balance cannot be negative');
select throws_ok(format('update crypto.ledger_accounts set balance = 5 where id = %s', :sys),
    '23514', null, 'a system account keeps no running balance');
select throws_ok($$ insert into crypto.ledger_accounts (kind) values ('user') $$,
    '23514', null, 'a user account belongs to a user');
select throws_ok(format($$ insert into crypto.ledger_transfers
    (idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
    values ('key1', %s, %s, 0, 'x', now()) $$, :sys, :acct), '23514', null, 'a transfer moves a positive amount');
select throws_ok(format($$ insert into crypto.ledger_transfers
    (idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
    values ('key2', %s, %s, 5, 'x', now()) $$, :acct, :acct), '23514', null, 'an account cannot pay itself');
select throws_ok(format($$ insert into crypto.ledger_transfers
    (idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at, refusal)
    values ('key3', %s, %s, 5, 'x', now(), 'nope') $$, :sys, :acct), '23514', null, 'a refusal is a SQLSTATE');
insert into crypto.ledger_transfers (idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
values ('key4', :sys, :acct, 5, 'x', now());
select throws_ok(format($$ insert into crypto.ledger_transfers
    (idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
    values ('key4', %s, %s, 5, 'x', now()) $$, :sys, :acct), '23505', null, 'an idempotency key is used once');
select throws_ok(format($$ insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
    select id, %s, 5, -5, now() from crypto.ledger_transfers where idempotency_key = 'key4' $$, :acct),
    '23514', null, 'no entry leaves a balance below zero');
select throws_ok(format($$ insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
    select id, %s, 0, 0, now() from crypto.ledger_transfers where idempotency_key = 'key4' $$, :acct),
    '23514', null, 'an entry moves something');

insert into crypto.rewards_inventory (sku, name, cost_points, stock, reserved, issued) values ('S', 's', 10, 2, 1, 1);
select throws_ok($$ update crypto.rewards_inventory set reserved = 2 where sku = 'S' $$,
    '23514', null, 'stock is never oversold: reserved + issued <= stock');
select throws_ok($$ update crypto.rewards_inventory set stock = -1, reserved = 0, issued = 0 where sku = 'S' $$,
    '23514', null, 'stock is never negative');
select throws_ok($$ update crypto.rewards_inventory set cost_points = 0 where sku = 'S' $$,
    '23514', null, 'a reward costs something');
select throws_ok(format($$ insert into crypto.rewards_redemptions
    (user_id, sku, cost_points, status, idempotency_key, debit_transfer_id, created_at, updated_at)
    select %L, 'S', 10, 'FAILED', 'r1', id, now(), now() from crypto.ledger_transfers where idempotency_key = 'key4' $$, :'u'),
    '23514', null, 'a failed or cancelled redemption carries its refund');
select throws_ok($$ insert into crypto.ads (id, title, reward_kind, reward_points) values ('a', 'a', 'SLOT', 5) $$,
    '23514', null, 'a SLOT ad pays no points');
select throws_ok($$ insert into crypto.ads (id, title, reward_kind, reward_points) values ('b', 'b', 'POINTS', 0) $$,
    '23514', null, 'a POINTS ad pays some');
insert into crypto.ads (id, title, reward_kind, reward_points) values ('c', 'c', 'POINTS', 5);
select throws_ok(format($$ insert into crypto.ad_unlocks
    (user_id, ad_id, trading_day, reward_kind, transfer_id, idempotency_key, created_at)
    values (%L, 'c', (select min(trading_day) from crypto.trading_calendar), 'POINTS', null, 'x', now()) $$, :'u'),
    null, null, 'a POINTS unlock has its transfer');

select * from finish();
rollback;
