begin;
select plan(22);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('ann@example.com') as ann \gset
select tests.create_user('bo@example.com') as bo \gset
select tests.authenticate_as(:'ann');
select api.submit_prediction('AAPL', 'UP');
select tests.clear_authentication();
select crypto.adjust_points('ann@example.com', 40, 'welcome', 'u1');

select is(jsonb_array_length(crypto.users_list()), 2, 'every user is listed');
select is(
    (select u ->> 'balance' from jsonb_array_elements(crypto.users_list()) as u where u ->> 'email' = 'ann@example.com'),
    '40', 'with the balance'
);
select is(
    (select u ->> 'predictions' from jsonb_array_elements(crypto.users_list()) as u
     where u ->> 'email' = 'ann@example.com'),
    '1', 'and the number of predictions'
);
select is(crypto.user_detail('ANN@example.com') ->> 'last_seen_at', crypto.kst(crypto.now()),
    'last seen is the latest prediction (or sign-in)');
select is(crypto.user_detail('bo@example.com') -> 'last_seen_at', 'null'::jsonb, 'a user never seen has none');
select is(crypto.user_detail('ann@example.com') #>> '{recent_predictions,0,symbol}', 'AAPL', 'recent predictions');
select is(crypto.user_detail('ann@example.com') #>> '{outcomes,pending}', '1', 'outcomes counted');
select throws_ok($$ select crypto.user_detail('nobody@example.com') $$, 'OX004', 'NOT_FOUND', 'an unknown email');
select throws_ok($$ select crypto.users_list('root') $$, 'OX000', 'VALIDATION_FAILED', 'an unknown role');
select is(crypto.user_ledger('ann@example.com') #>> '{items,0,amount}', '40', 'a user''s ledger');

-- Demote and reset the second factor: admins only, sessions end, audited.
select crypto.make_admin('bo@example.com', 'JBSWY3DPEHPK3PXP', 'a key of sixteen chars');
select throws_ok($$ select crypto.make_admin('bo@example.com', 'JBSWY3DPEHPK3PXQ', 'a key of sixteen chars') $$, 'OX124', 'ALREADY_ADMIN',
    'promoting an admin again is refused (it would replace the secret silently)');
insert into crypto.refresh_tokens (user_id, family_id, token_hash, issued_at, expires_at, family_expires_at)
values (:'bo', gen_random_uuid(), sha256('t1'), now(), now() + interval '1 day', now() + interval '1 day');
select crypto.reset_totp('bo@example.com', 'ABCDEFGHIJKLMNOP', 'a key of sixteen chars');
select is((select ext.pgp_sym_decrypt(totp_secret_enc, 'a key of sixteen chars') from crypto.users where id = :'bo'), 'ABCDEFGHIJKLMNOP',
    'a new TOTP secret, stored encrypted');
select is((select count(*)::int from crypto.refresh_tokens where user_id = :'bo' and revoked_at is null), 0,
    '... and the admin''s sessions end');
select ok((select tokens_valid_after between statement_timestamp() - interval '1 minute' and statement_timestamp()
    from crypto.users where id = :'bo'),
    '... access tokens issued before included (a reset is for a stolen authenticator)');
select throws_ok($$ select crypto.reset_totp('ann@example.com', 'ABCDEFGHIJKLMNOP', 'a key of sixteen chars') $$, 'OX123', 'NOT_AN_ADMIN',
    'a player has no second factor to reset');
select throws_ok($$ select crypto.reset_totp('bo@example.com', 'short', 'a key of sixteen chars') $$, 'OX000', 'VALIDATION_FAILED',
    'a secret that is not base32');
select is(crypto.demote_admin('bo@example.com') ->> 'role', 'user', 'an admin is demoted');
select is((select coalesce(totp_secret, totp_secret_enc::text) from crypto.users where id = :'bo'), null,
    '... and the secret is forgotten');
select throws_ok($$ select crypto.demote_admin('bo@example.com') $$, 'OX123', 'NOT_AN_ADMIN', 'demoting a player');
select results_eq(
    $$ select action, subject from crypto.audit_logs where action in ('user.demote', 'user.reset_totp') order by id $$,
    format($$ values ('user.reset_totp', %L), ('user.demote', %L) $$, :'bo', :'bo'),
    'both are audited'
);

-- Who may not: players and anon read no one else; only the operator changes a role.
select is_empty(
    $$ select r, f from unnest(array['anon', 'app_user', 'app_admin', 'authenticator']) as r
       cross join unnest(array['crypto.users_list(text, integer)', 'crypto.user_detail(text, integer)',
           'crypto.user_ledger(text, bigint, integer)', 'crypto.demote_admin(text)',
           'crypto.reset_totp(text, text, text)']) as f
       where has_function_privilege(r, f, 'execute') $$,
    'anon, players and admin tokens call none of them'
);
select is_empty(
    $$ select f from unnest(array['crypto.demote_admin(text)', 'crypto.reset_totp(text, text, text)']) as f
       where has_function_privilege('auditor', f, 'execute') $$,
    'the auditor reads users but changes no role'
);

select * from finish();
rollback;
