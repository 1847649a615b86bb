begin;
select plan(19);

select tests.create_user('t@example.com') as u \gset
select tests.authenticate_as(:'u');
select api.issue_refresh(sha256('r1'));
select tests.clear_authentication();
set local role anon;

-- Refresh tokens rotate; a spent one presented again revokes its family.
select is(api.refresh(sha256('r1'), sha256('r2'))::jsonb ->> 'email', 't@example.com', 'a refresh token buys a new pair');
select is(api.refresh(sha256('r1'), sha256('r3'))::jsonb #>> '{problem,sqlstate}', 'OX001', 'a spent token is refused');
select is(api.refresh(sha256('r2'), sha256('r4'))::jsonb #>> '{problem,sqlstate}', 'OX001',
    '... and its successor with it: the family is revoked');
select throws_ok($$ select api.refresh(sha256('nobody'), sha256('r5')) $$, 'OX001', 'INVALID_TOKEN', 'an unknown token');
reset role;
select is((select count(*)::int from crypto.refresh_tokens where revoked_at is null), 0, 'nothing of the family is left');

select tests.authenticate_as(:'u');
select api.issue_refresh(sha256('s1'));
select tests.clear_authentication();
select is(api.logout(sha256('s1'))::jsonb, '{"logged_out": true}'::jsonb, 'logout');
select is(api.refresh(sha256('s1'), sha256('s2'))::jsonb #>> '{problem,sqlstate}', 'OX001', 'a logged-out token is dead');

-- OAuth state: single use, expiring; a sign-in only through a spent state.
select crypto.clock_set('2026-11-24 09:00:00+09');
select api.oauth_begin(repeat('a', 43), repeat('n', 43), 'verifier', 'http://cb');
select api.oauth_begin(repeat('b', 43), repeat('n', 43), 'verifier', 'http://cb');
select is(api.oauth_consume(repeat('a', 43))::jsonb ->> 'nonce', repeat('n', 43), 'the callback spends the state');
select throws_ok(format('select api.oauth_consume(%L)', repeat('a', 43)), 'OX011', 'OAUTH_FAILED', 'once');
select crypto.clock_set('2026-11-24 09:10:01+09');
select throws_ok(format('select api.oauth_consume(%L)', repeat('b', 43)), 'OX011', 'OAUTH_FAILED', 'and within 10 minutes');
select crypto.clock_set('2026-11-24 09:01:00+09');
select throws_ok(format('select api.oauth_login(%L, %L, %L)', repeat('z', 43), 'g-1', 'x@example.com'),
    'OX011', 'OAUTH_FAILED', 'no sign-in without a flow this service started');
select is(api.oauth_login(repeat('a', 43), 'g-1', 'T@example.com')::jsonb ->> 'id', :'u',
    'a verified email links the existing user');
select throws_ok(format('select api.oauth_login(%L, %L, %L)', repeat('a', 43), 'g-1', 't@example.com'),
    'OX011', 'OAUTH_FAILED', 'a flow signs in once');

-- Admins: a base32 secret, a code accepted once.
select throws_ok($$ select crypto.make_admin('t@example.com', 'not base32!') $$, 'OX000', 'VALIDATION_FAILED',
    'a TOTP secret is base32');
select crypto.make_admin('t@example.com', 'JBSWY3DPEHPK3PXP');
select is(api.mfa_accept(:'u', 100)::jsonb ->> 'accepted', 'true', 'a code of a new time step is accepted');
select is(api.mfa_accept(:'u', 100)::jsonb ->> 'accepted', 'false', 'the same step again is a replay');

-- An admin session begins with the second factor, never without it.
select tests.create_user('m@example.com') as m \gset
select tests.authenticate_as(:'m');
select api.issue_refresh(sha256('m1'));
select tests.clear_authentication();
select crypto.make_admin('m@example.com', 'JBSWY3DPEHPK3PXP');
select is(api.refresh(sha256('m1'), sha256('m2'))::jsonb #>> '{problem,sqlstate}', 'OX001',
    'promotion ends the sessions begun as a user');
select api.oauth_begin(repeat('c', 43), repeat('n', 43), 'verifier', 'http://cb');
select api.oauth_consume(repeat('c', 43));
select throws_ok(format('select api.oauth_login(%L, %L, %L)', repeat('c', 43), 'g-m', 'm@example.com'),
    'OX010', 'MFA_REQUIRED', 'Google sign-in is not an admin''s second factor');
select is((select google_sub from crypto.users where email = 'm@example.com'), null, '... and links nothing');

select * from finish();
rollback;
