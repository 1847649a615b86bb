begin;
select plan(17);

-- A healthy history: a settled day with a winner and a loser, a redemption
-- issued, one failed, an ad reward.
select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('w@example.com') as w \gset
select tests.create_user('l@example.com') as l \gset
insert into crypto.ads (id, title, reward_kind, reward_points) values ('pts', '20 points', 'POINTS', 20);
select crypto.upsert_reward('MUG', 'A mug', 50, 5);
select tests.authenticate_as(:'w');
select api.submit_prediction('AAPL', 'UP');
select api.click_ad('pts', 'a1')::jsonb ->> 'impression_id' as imp \gset
select tests.clear_authentication();
-- The ad pays on the network's verified callback, as the API passes it on.
select crypto.now() as t \gset
set local role ad_network;
select api.ad_ssv_reward('a1', :'imp', :'w', :'t', '{}');
reset role;
select tests.authenticate_as(:'l');
select api.submit_prediction('AAPL', 'DOWN');
select tests.clear_authentication();
select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');
select crypto.load_eod_price('2026-11-23', 'AAPL', 100, 'test');
select crypto.load_eod_price('2026-11-24', 'AAPL', 101, 'test');
select crypto.settle_session('2026-11-24', true);
select tests.authenticate_as(:'w');
select api.redeem_reward('MUG', 'r1');
select api.redeem_reward('MUG', 'r2');
select tests.clear_authentication();
select crypto.redemption_issued(min(id), 'v1') from crypto.rewards_redemptions;
select crypto.redemption_failed(max(id), 'no') from crypto.rewards_redemptions;

select is_empty('select * from crypto.integrity_violations()', 'a healthy history has no violation');
select is(crypto.run_integrity_check(), 0, 'the daily run records a clean result');
select is((select status::text from crypto.system_health where check_name = 'integrity' order by id desc limit 1),
    'ok', '... as an ok health row');

-- Now break things the way only a superuser could, and see each one found.
set local session_replication_role = replica;
create function pg_temp.found(p_check text) returns boolean
language sql as $$ select exists (select from crypto.integrity_violations() as v where v.check_name = p_check) $$;

update crypto.ledger_accounts set balance = balance + 1 where user_id = :'w';
select ok(pg_temp.found('balance_mismatch'), 'a stored balance that differs from its entries');
update crypto.ledger_accounts set balance = balance - 1 where user_id = :'w';

update crypto.ledger_entries set balance_after = balance_after + 5
where id = (select min(e.id) from crypto.ledger_entries as e join crypto.ledger_accounts as a on a.id = e.account_id
            where a.user_id = :'w');
select ok(pg_temp.found('balance_chain'), 'a broken balance-after chain');

insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
select max(id), crypto.system_account('issuance'), 7, null, now() from crypto.ledger_transfers;
select ok(pg_temp.found('transfer_entries'), 'a transfer whose entries do not balance');
select ok(pg_temp.found('ledger_sum'), 'entries that do not sum to zero');

alter table crypto.ledger_accounts drop constraint ledger_accounts_check2;
update crypto.ledger_accounts set balance = -3 where user_id = :'l';
select ok(pg_temp.found('negative_balance'), 'a negative balance');

update crypto.rewards_inventory set reserved = 1 where sku = 'MUG';
select ok(pg_temp.found('inventory'), 'stock that is not available + reserved + issued');

update crypto.rewards_redemptions set cost_points = 49 where id = (select max(id) from crypto.rewards_redemptions);
select ok(pg_temp.found('redemption_ledger'), 'a redemption that did not pay its cost');

insert into crypto.predictions (id, user_id, trading_day, symbol, choice, created_at)
overriding system value
select p.id, p.user_id, '2026-11-23', p.symbol, p.choice, p.created_at
from crypto.predictions as p where p.user_id = :'w';
select ok(pg_temp.found('prediction_id_repeated'), 'a prediction id written twice (past the identity)');
delete from crypto.predictions where trading_day = '2026-11-23';

delete from crypto.settlements where symbol = 'AAPL';
select ok(pg_temp.found('unsettled_prediction'), 'a settled session with an unsettled prediction');
select ok(pg_temp.found('award_without_win'), 'an award without a winning prediction');

update crypto.ledger_transfers set refusal = 'OX201' where id = (select transfer_id from crypto.ad_unlocks);
select ok(pg_temp.found('ad_reward_ledger'), 'an ad unlock whose ledger side does not match');

-- Points minted through the ledger function itself, with no cause on record.
set local session_replication_role = origin;
select crypto.ledger_transfer('gift:1', crypto.system_account('issuance'), crypto.user_account(:'l'), 50, 'gift');
select ok(pg_temp.found('unexplained_transfer'), 'a system-account movement with no cause');
select cmp_ok(crypto.run_integrity_check(), '>', 0, 'the daily run counts them');
select is((select status::text from crypto.system_health where check_name = 'integrity' order by id desc limit 1),
    'alert', '... and raises an alert row');

select * from finish();
rollback;
