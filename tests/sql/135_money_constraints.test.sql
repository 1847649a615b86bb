begin;
select plan(16);

-- Each rule of the money tables is a constraint: it holds even for a writer
-- that bypasses every function (here the owner, with triggers off).
set local session_replication_role = replica;

-- Which constraint refused a statement: a test that names it cannot pass
-- on another error (a NOT NULL before the CHECK it claims to test).
create function pg_temp.violated(p_sql text) returns text
language plpgsql
as $$
declare
    v_name text;
begin
    execute p_sql;
    return 'no error';
exception when others then
    get stacked diagnostics v_name = constraint_name;
    return sqlstate || ':' || coalesce(v_name, sqlerrm);
end
$$;
select tests.load_calendar();
select tests.create_user('c@example.com') as u \gset
select crypto.user_account(:'u') as acct \gset
select crypto.system_account('issuance') as sys \gset

select is(pg_temp.violated(format('update crypto.ledger_accounts set balance = -1 where id = %s', :acct)),
    '23514:ledger_accounts_check2', 'a user balance cannot be negative');
select is(pg_temp.violated(format('update crypto.ledger_accounts set balance = 5 where id = %s', :sys)),
    '23514:ledger_accounts_check3', 'a system account keeps no running balance');
select is(pg_temp.violated($$ insert into crypto.ledger_accounts (kind) values ('user') $$),
    '23514:ledger_accounts_check', 'a user account belongs to a user');
select is(pg_temp.violated(format($$ insert into crypto.ledger_transfers
    (id, idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
    values (-1, 'key1', %s, %s, 0, 'x', now()) $$, :sys, :acct)),
    '23514:ledger_transfers_amount_check', 'a transfer moves a positive amount');
select is(pg_temp.violated(format($$ insert into crypto.ledger_transfers
    (id, idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
    values (-2, 'key2', %s, %s, 5, 'x', now()) $$, :acct, :acct)),
    '23514:ledger_transfers_check', 'an account cannot pay itself');
select is(pg_temp.violated(format($$ insert into crypto.ledger_transfers
    (id, idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at, refusal)
    values (-3, 'key3', %s, %s, 5, 'x', now(), 'nope') $$, :sys, :acct)),
    '23514:ledger_transfers_refusal_check', 'a refusal is a SQLSTATE');
insert into crypto.ledger_transfer_keys (idempotency_key, created_at) values ('key4', now())
returning transfer_id as key4 \gset
insert into crypto.ledger_transfers (id, idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
values (:key4, 'key4', :sys, :acct, 5, 'x', now());
select is(pg_temp.violated($$ insert into crypto.ledger_transfer_keys (idempotency_key, created_at)
    values ('key4', now()) $$),
    '23505:ledger_transfer_keys_idempotency_key_key', 'an idempotency key is used once');
select is(pg_temp.violated(format($$ insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
    select id, %s, 5, -5, now() from crypto.ledger_transfers where idempotency_key = 'key4' $$, :acct)),
    '23514:ledger_entries_balance_after_check', 'no entry leaves a balance below zero');
select is(pg_temp.violated(format($$ insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
    select id, %s, 0, 0, now() from crypto.ledger_transfers where idempotency_key = 'key4' $$, :acct)),
    '23514:ledger_entries_amount_check', 'an entry moves something');

insert into crypto.rewards_inventory (sku, name, cost_points, stock, reserved, issued) values ('S', 's', 10, 2, 1, 1);
select is(pg_temp.violated($$ update crypto.rewards_inventory set reserved = 2 where sku = 'S' $$),
    '23514:rewards_inventory_check', 'stock is never oversold: reserved + issued <= stock');
select is(pg_temp.violated($$ update crypto.rewards_inventory set stock = -1, reserved = 0, issued = 0 where sku = 'S' $$),
    '23514:rewards_inventory_check', 'stock is never negative: nothing reserved or issued still needs stock >= 0');
select is(pg_temp.violated($$ update crypto.rewards_inventory set cost_points = 0 where sku = 'S' $$),
    '23514:rewards_inventory_cost_points_check', 'a reward costs something');
select is(pg_temp.violated(format($$ insert into crypto.rewards_redemptions
    (user_id, sku, cost_points, status, idempotency_key, debit_transfer_id, created_at, updated_at)
    select %L, 'S', 10, 'FAILED', 'r1', id, now(), now() from crypto.ledger_transfers where idempotency_key = 'key4' $$, :'u')),
    '23514:rewards_redemptions_check', 'a failed or cancelled redemption carries its refund');
select is(pg_temp.violated($$ insert into crypto.ads (id, title, reward_kind, reward_points) values ('a', 'a', 'SLOT', 5) $$),
    '23514:ads_check', 'a SLOT ad pays no points');
select is(pg_temp.violated($$ insert into crypto.ads (id, title, reward_kind, reward_points) values ('b', 'b', 'POINTS', 0) $$),
    '23514:ads_check', 'a POINTS ad pays some');
insert into crypto.ads (id, title, reward_kind, reward_points) values ('c', 'c', 'POINTS', 5);
select is(pg_temp.violated(format($$ insert into crypto.ad_unlocks
    (user_id, ad_id, trading_day, reward_kind, transfer_id, idempotency_key, created_at)
    values (%L, 'c', (select min(trading_day) from crypto.trading_calendar), 'POINTS', null, 'x', now()) $$, :'u')),
    '23514:ad_unlocks_check', 'a POINTS unlock has its transfer');

select * from finish();
rollback;
