begin;
select plan(31);

select tests.create_user('t@example.com') as u \gset
select tests.authenticate_as(:'u', 'auth_service');
select api.issue_refresh(sha256('r1'));
select tests.clear_authentication();
set local role auth_service;

-- Refresh tokens rotate; a spent one presented again revokes its family.
select is(api.refresh(sha256('r1'), sha256('r2'))::jsonb ->> 'email', 't@example.com', 'a refresh token buys a new pair');
select is(api.refresh(sha256('r1'), sha256('r3'))::jsonb #>> '{problem,sqlstate}', 'OX001', 'a spent token is refused');
select is(api.refresh(sha256('r2'), sha256('r4'))::jsonb #>> '{problem,sqlstate}', 'OX001',
    '... and its successor with it: the family is revoked');
select throws_ok($$ select api.refresh(sha256('nobody'), sha256('r5')) $$, 'OX001', 'INVALID_TOKEN', 'an unknown token');
reset role;
select is((select count(*)::int from crypto.refresh_tokens where revoked_at is null), 0, 'nothing of the family is left');

select tests.authenticate_as(:'u', 'auth_service');
select api.issue_refresh(sha256('s1'));
select tests.clear_authentication();
select is(api.logout(sha256('s1'))::jsonb, '{"logged_out": true}'::jsonb, 'logout');
select is(api.refresh(sha256('s1'), sha256('s2'))::jsonb #>> '{problem,sqlstate}', 'OX001', 'a logged-out token is dead');

-- OAuth state: single use, expiring; a sign-in only through a spent state.
select crypto.clock_set('2026-11-24 09:00:00+09');
select api.oauth_begin(repeat('a', 43), repeat('n', 43), 'verifier', 'http://cb', sha256('browser'));
select api.oauth_begin(repeat('b', 43), repeat('n', 43), 'verifier', 'http://cb', sha256('browser'));
select is(api.oauth_consume(repeat('a', 43), sha256('browser'))::jsonb ->> 'nonce', repeat('n', 43), 'the callback spends the state');
select throws_ok(format('select api.oauth_consume(%L, sha256(%L))', repeat('a', 43), 'browser'), 'OX011', 'OAUTH_FAILED', 'once');
select api.oauth_begin(repeat('d', 43), repeat('n', 43), 'verifier', 'http://cb', sha256('browser'));
select throws_ok(format('select api.oauth_consume(%L, sha256(%L))', repeat('d', 43), 'another browser'),
    'OX011', 'OAUTH_FAILED', 'another browser cannot spend a state');
select throws_ok(format('select api.oauth_consume(%L, null)', repeat('d', 43)),
    'OX011', 'OAUTH_FAILED', '... nor a request without the cookie');
select is(api.oauth_consume(repeat('d', 43), sha256('browser'))::jsonb ->> 'nonce', repeat('n', 43),
    '... and the browser that began it still can');
select crypto.clock_set('2026-11-24 09:10:01+09');
select throws_ok(format('select api.oauth_consume(%L, sha256(%L))', repeat('b', 43), 'browser'), 'OX011', 'OAUTH_FAILED', 'and within 10 minutes');
select crypto.clock_set('2026-11-24 09:01:00+09');
select throws_ok(format('select api.oauth_login(%L, %L, %L)', repeat('z', 43), 'g-1', 'x@example.com'),
    'OX011', 'OAUTH_FAILED', 'no sign-in without a flow this service started');
update crypto.users set email_verified_at = crypto.now() where id = :'u';
select is(api.oauth_login(repeat('a', 43), 'g-1', 'T@example.com')::jsonb ->> 'id', :'u',
    'a Google-verified email links the existing user whose email is verified');
select isnt((select password_hash from crypto.users where id = :'u'), null, '... who keeps their password');
select throws_ok(format('select api.oauth_login(%L, %L, %L)', repeat('a', 43), 'g-1', 't@example.com'),
    'OX011', 'OAUTH_FAILED', 'a flow signs in once');

-- Admins: a base32 secret, stored encrypted (codes: 145_totp.test.sql).
select throws_ok($$ select crypto.make_admin('t@example.com', 'not base32!', 'a key of sixteen chars') $$,
    'OX000', 'VALIDATION_FAILED', 'a TOTP secret is base32');
select throws_ok($$ select crypto.make_admin('t@example.com', 'JBSWY3DPEHPK3PXP', null) $$,
    'OX000', 'VALIDATION_FAILED', 'no promotion without the encryption key');

-- An admin session begins with the second factor, never without it.
select tests.create_user('m@example.com') as m \gset
select tests.authenticate_as(:'m', 'auth_service');
select api.issue_refresh(sha256('m1'));
select tests.clear_authentication();
select crypto.make_admin('m@example.com', 'JBSWY3DPEHPK3PXP', 'a key of sixteen chars');
select is(api.refresh(sha256('m1'), sha256('m2'))::jsonb #>> '{problem,sqlstate}', 'OX001',
    'promotion ends the sessions begun as a user');
select api.oauth_begin(repeat('c', 43), repeat('n', 43), 'verifier', 'http://cb', sha256('browser'));
select api.oauth_consume(repeat('c', 43), sha256('browser'));
select throws_ok(format('select api.oauth_login(%L, %L, %L)', repeat('c', 43), 'g-m', 'm@example.com'),
    'OX010', 'MFA_REQUIRED', 'Google sign-in is not an admin''s second factor');
select is((select google_sub from crypto.users where email = 'm@example.com'), null, '... and links nothing');


-- Families: an absolute end (90 days, however often rotated), and one begun
-- without a second factor never yields an admin session.
select crypto.clock_set('2026-01-01 09:00:00+09');
select tests.create_user('f@example.com') as f \gset
select tests.authenticate_as(:'f', 'auth_service');
select api.issue_refresh(sha256('f1'));
select tests.clear_authentication();
select is((select family_expires_at from crypto.refresh_tokens where token_hash = sha256('f1')),
    '2026-04-01 09:00:00+09'::timestamptz, 'a family ends 90 days after it began');
select is((select mfa from crypto.refresh_tokens where token_hash = sha256('f1')), false,
    '... and is marked as begun without a second factor');
select crypto.clock_set('2026-01-25 09:00:00+09');
select api.refresh(sha256('f1'), sha256('f2'));
select crypto.clock_set('2026-02-20 09:00:00+09');
select api.refresh(sha256('f2'), sha256('f3'));
select crypto.clock_set('2026-03-18 09:00:00+09');
select api.refresh(sha256('f3'), sha256('f4'));
select is((select expires_at from crypto.refresh_tokens where token_hash = sha256('f4')),
    '2026-04-01 09:00:00+09'::timestamptz, 'a rotation never reaches past the family''s end');
select crypto.clock_set('2026-04-01 09:00:01+09');
select throws_ok($$ select api.refresh(sha256('f4'), sha256('f5')) $$, 'OX001', 'INVALID_TOKEN',
    'a family ends at its end, however recently rotated');

-- A promotion that raced a refresh (the token survived make_admin's revocation).
select crypto.clock_set('2026-04-02 09:00:00+09');
select tests.authenticate_as(:'f', 'auth_service');
select api.issue_refresh(sha256('g1'));
select tests.clear_authentication();
update crypto.users set role = 'admin', totp_secret = 'JBSWY3DPEHPK3PXP' where id = :'f';
select is(api.refresh(sha256('g1'), sha256('g2'))::jsonb #>> '{problem,sqlstate}', 'OX001',
    'a family begun without a second factor never yields an admin session');
select is((select count(*)::int from crypto.refresh_tokens where revoked_at is null
    and family_id = (select family_id from crypto.refresh_tokens where token_hash = sha256('g1'))), 0,
    '... and is revoked');
select ok(exists (select from crypto.audit_logs where action = 'auth.refresh_refused_no_mfa'), '... audited');
select tests.authenticate_as(:'f', 'app_admin');
select throws_ok($$ select api.issue_refresh(sha256('g3')) $$, '42501', null,
    'an admin cannot start a family without the second factor (no grant)');
select tests.clear_authentication();
select tests.authenticate_as(:'f', 'auth_service');
select throws_ok($$ select api.issue_refresh(sha256('g3')) $$, 'OX003', 'FORBIDDEN',
    '... nor through the sign-in role');
select tests.clear_authentication();

select * from finish();
rollback;
