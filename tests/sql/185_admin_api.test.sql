-- The admin API's functions (issue 11, item 1): admins only, each change
-- audited under the admin's own id, bad input refused with a stable code.
begin;
select plan(30);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('boss@example.com') as boss \gset
select tests.create_user('player@example.com') as player \gset
update crypto.users set role = 'admin', totp_secret = 'JBSWY3DPEHPK3PXP' where id = :'boss';

-- As the shim calls it: the admin routes' login, then the role and claims
-- (the audit believes claims only from the API's logins).

-- Who may not: a player's token, and an admin's user with a player's token.
reset session authorization;
set local session authorization authenticator;
select tests.authenticate_as(:'player', 'app_user');
select throws_ok($$ select api.admin_dashboard() $$, '42501', null, 'app_user cannot call the admin API at all');
reset session authorization;
set local session authorization admin_authenticator;
select tests.authenticate_as(:'player', 'app_admin');
select throws_ok($$ select api.admin_dashboard() $$, 'OX003', 'FORBIDDEN', 'a player with an admin role claim is refused');
reset session authorization;
set local session authorization admin_authenticator;
select tests.authenticate_as(:'boss', 'app_admin');

select tests.clear_authentication();
reset session authorization;
select crypto.rollup_metrics();
reset session authorization;
set local session authorization admin_authenticator;
select tests.authenticate_as(:'boss', 'app_admin');
select results_eq(
    $$ select d -> 'session' ->> 'trading_day', d -> 'session' ->> 'phase', (d -> 'points' ->> 'held_by_players')::int
       from api.admin_dashboard() as d $$,
    $$ values ('2026-11-24', 'OPEN', 0) $$,
    'the dashboard: today''s session and the points players hold, as of the rollup'
);

-- Points, by email or by id, keyed by the request's Idempotency-Key.
select is((api.admin_adjust_points(null, :'player', 70, 'goodwill', 'req-1') ->> 'balance_after')::int, 70,
    'an adjustment by user id');
select is((api.admin_adjust_points(null, :'player', 70, 'goodwill', 'req-1') ->> 'balance_after')::int, 70,
    '... a retry with the same key pays nothing more');
select tests.clear_authentication();
reset session authorization;
select is((select balance from crypto.ledger_accounts where user_id = :'player'), 70::bigint, '... balance 70');
reset session authorization;
set local session authorization admin_authenticator;
select tests.authenticate_as(:'boss', 'app_admin');
select throws_ok($$ select api.admin_adjust_points('player@example.com', null, 5, 'x', null) $$,
    'OX000', 'VALIDATION_FAILED', 'no Idempotency-Key: refused');
select throws_ok(format($$ select api.admin_adjust_points('player@example.com', %L, 5, 'both', 'k') $$, :'player'),
    'OX000', 'VALIDATION_FAILED', 'email and id at once: refused');
select tests.clear_authentication();
reset session authorization;
select is(
    (select actor from crypto.audit_logs where action = 'points.adjust' order by id desc limit 1),
    'user:' || :'boss', 'audited under the admin''s own id'
);
reset session authorization;
set local session authorization admin_authenticator;
select tests.authenticate_as(:'boss', 'app_admin');

-- Users: disabled means refused at once, sessions ended; enabled again.
select is(api.admin_user_disabled(:'player', true, 'chargeback fraud') ->> 'id', :'player', 'an admin disables a user');
reset session authorization;
set local session authorization authenticator;
select tests.authenticate_as(:'player', 'app_user');
select throws_ok($$ select api.points_balance() $$, 'OX001', null, 'the disabled user''s token stops working');
reset session authorization;
set local session authorization admin_authenticator;
select tests.authenticate_as(:'boss', 'app_admin');
select throws_ok(format($$ select api.admin_user_disabled(%L, true, 'oops') $$, :'boss'),
    'OX000', 'VALIDATION_FAILED', 'not oneself');
select throws_ok(format($$ select api.admin_user_disabled(%L, false, '') $$, :'player'),
    'OX000', 'VALIDATION_FAILED', 'a reason is required');
select is(api.admin_user_disabled(:'player', false, 'refund cleared') ->> 'disabled_at', null, '... and enables them again');
select tests.clear_authentication();
reset session authorization;
select results_eq(
    $$ select action, actor from crypto.audit_logs where action in ('user.disabled', 'user.enabled') order by id $$,
    format($$ values ('user.disabled', %L), ('user.enabled', %L) $$, 'user:' || :'boss', 'user:' || :'boss'),
    'both audited under the admin'
);
reset session authorization;
set local session authorization admin_authenticator;
select tests.authenticate_as(:'boss', 'app_admin');

-- Universe, rewards, ads, settings.
select throws_ok($$ select api.admin_universe_upsert('2026-11-25', array['AAPL', 'ZZZZZZ']) $$,
    'OX130', 'UNKNOWN_SYMBOL', 'an unknown ticker is refused');
select is((api.admin_universe_upsert('2026-11-25', array['AAPL', 'MSFT']) ->> 'symbols')::int, 2, 'a universe is set');
select is(api.admin_reward_inventory('MUG', 'A mug', 300, 5, null) ->> 'stock', '5', 'a SKU is added');
select is(api.admin_reward_inventory('MUG', null, null, 9, null) ->> 'stock', '9', '... restocked, the rest kept');
select is(api.admin_reward_inventory('MUG', null, null, null, false) ->> 'active', 'false', '... disabled');
select throws_ok($$ select api.admin_reward_inventory('MUG', null, -1, null, null) $$,
    'OX000', 'VALIDATION_FAILED', 'a negative price is refused');
select is(api.admin_ad_upsert('promo', 'Promo', 'POINTS', 20, null) ->> 'reward_points', '20', 'an ad is created');
select is(api.admin_ad_upsert('promo', null, null, null, false) ->> 'active', 'false', '... and disabled');
select throws_ok($$ select api.admin_ad_upsert('slot', 'Slot', 'SLOT', 5, null) $$,
    'OX000', 'VALIDATION_FAILED', 'a SLOT ad pays no points');
select throws_ok($$ select api.admin_setting_set('predictions.base_limit', '0') $$,
    'OX000', 'VALIDATION_FAILED', 'a limit below 1 is refused');
select throws_ok($$ select api.admin_setting_set('no.such', '1') $$, 'OX120', 'UNKNOWN_SETTING', 'an unknown key');

-- Operations: the audit search pages, the day's fetch, a batch by name.
select is(json_array_length(api.admin_audit('reward.upsert', null, null, null, null, 2, null) -> 'items'), 2,
    'the audit search filters by action and pages');
select throws_ok($$ select api.admin_eod_trigger('2026-11-24') $$, 'OX110', 'MARKET_NOT_CLOSED',
    'no fetch before New York closes the day');
select throws_ok($$ select api.admin_batch_run('rm -rf') $$, 'OX000', 'VALIDATION_FAILED', 'only named jobs run');
select is(api.admin_integrity_check() ->> 'violations', '0', 'the integrity check runs now and says what it found');

select * from finish();
rollback;
