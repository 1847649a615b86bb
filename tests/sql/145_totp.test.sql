begin;
select plan(28);

-- RFC 6238 appendix B, SHA-1, 8 digits: the secret is the ASCII "12345678901234567890".
select is(
    (select array_agg(crypto.totp_code(convert_to('12345678901234567890', 'UTF8'),
        crypto.totp_step(to_timestamp(t)), 8) order by t)
    from unnest(array[59, 1111111109, 1111111111, 1234567890, 2000000000, 20000000000]) as t),
    array['94287082', '07081804', '14050471', '89005924', '69279037', '65353130'],
    'the SQL TOTP gives the RFC 6238 test vectors'
);
select is(crypto.totp_code(convert_to('12345678901234567890', 'UTF8'), crypto.totp_step(to_timestamp(59))),
    '287082', '... six digits by default');
select is(encode(crypto.base32_decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'), 'escape'), '12345678901234567890',
    'base32 decodes as RFC 4648 says');
select throws_ok($$ select crypto.base32_decode('not base32!') $$, 'OX000', 'VALIDATION_FAILED', 'bad base32 is refused');

-- An admin, the secret encrypted at rest.
select crypto.clock_set('2026-11-24 09:00:00+09');
select tests.create_user('boss@example.com') as boss \gset
select crypto.make_admin('boss@example.com', 'JBSWY3DPEHPK3PXP', 'the key of this test');
select is((select totp_secret from crypto.users where id = :'boss'), null, 'no plaintext secret is stored');
select is(ext.pgp_sym_decrypt((select totp_secret_enc from crypto.users where id = :'boss'), 'the key of this test'),
    'JBSWY3DPEHPK3PXP', 'the stored secret is the secret, encrypted with the key');
select throws_like(
    format('select ext.pgp_sym_decrypt(%L::bytea, %L)',
        (select totp_secret_enc from crypto.users where id = :'boss'), 'another key of sixteen'),
    '%Wrong key%', 'another key does not decrypt it'
);

-- One key for every process: a promotion, reset or sign-in with another
-- key is refused before it could store or read a secret with it.
select tests.create_user('other@example.com') as other \gset
select throws_ok($$ select crypto.make_admin('other@example.com', 'JBSWY3DPEHPK3PXP', 'another key of sixteen') $$,
    'OX015', 'TOTP_KEY_MISMATCH', 'another key than the one secrets were stored with is refused');
select is((select role::text from crypto.users where id = :'other'), 'user', '... and changes nothing');

-- Codes of this step and the next (a code is good one step either side).
select crypto.totp_code(crypto.base32_decode('JBSWY3DPEHPK3PXP'), crypto.totp_step(statement_timestamp())) as code,
    crypto.totp_code(crypto.base32_decode('JBSWY3DPEHPK3PXP'), crypto.totp_step(statement_timestamp()) + 1) as code_next \gset

-- Who may check codes: the shim's sign-in role only.
select tests.authenticate_as(:'boss');
select throws_ok(format('select api.mfa_verify(%L, %L, %L, sha256(%L))', :'boss', '000000', 'the key of this test', 'x'),
    '42501', null, 'a user cannot call mfa_verify');
select throws_ok(format('select crypto.make_admin(%L, %L, %L)', 'boss@example.com', 'JBSWY3DPEHPK3PXP', 'the key of this test'),
    '42501', null, 'a user cannot promote');
select tests.clear_authentication();
set local role anon;
select throws_ok(format('select crypto.make_admin(%L, %L, %L)', 'boss@example.com', 'JBSWY3DPEHPK3PXP', 'the key of this test'),
    '42501', null, 'anon cannot promote');
set local role auth_service;

-- The right code, once; its family is marked as begun with a second factor, for 12 hours.
select is(
    api.mfa_verify(:'boss', :'code',
        'the key of this test', sha256('a1'))::jsonb ->> 'role',
    'admin', 'the current code signs the admin in'
);
reset role;
select is((select (mfa, family_expires_at) from crypto.refresh_tokens where token_hash = sha256('a1')),
    (true, '2026-11-24 21:00:00+09'::timestamptz), 'the admin family began with the second factor and ends in 12 hours');
set local role auth_service;
select is(
    api.mfa_verify(:'boss', :'code',
        'the key of this test', sha256('a2'))::jsonb #>> '{problem,sqlstate}',
    'OX002', 'the same code again is a replay'
);
select throws_ok(format('select api.mfa_verify(%L, %L, %L, sha256(%L))', :'boss', '123456', null, 'x'),
    'OX000', 'VALIDATION_FAILED', 'no check without the key');
reset role;

-- Four more wrong codes (the replay was the first): the fifth locks the admin.
select crypto.clock_set('2026-11-24 09:05:00+09');
set local role auth_service;
select api.mfa_verify(:'boss', 'abcdef', 'the key of this test', sha256(convert_to('w' || i, 'UTF8'))) from generate_series(1, 3) as i;
reset role;
select is((select mfa_locked_until from crypto.users where id = :'boss'), null, 'four wrong codes do not lock');
set local role auth_service;
select is(api.mfa_verify(:'boss', '000000', 'the key of this test', sha256('w5'))::jsonb #>> '{problem,sqlstate}',
    'OX002', 'the fifth wrong code is refused');
reset role;
select is((select mfa_locked_until from crypto.users where id = :'boss'), '2026-11-24 09:20:00+09'::timestamptz,
    '... and locks the admin for 15 minutes');
select is((select count(*)::int from crypto.audit_logs where action = 'auth.mfa_failed' and subject = :'boss'), 5,
    'each wrong code is audited');
select ok(exists (select from crypto.audit_logs where action = 'auth.mfa_locked'), 'the lock is audited');
select is((select status::text || ':' || (details ->> 'user_id') from crypto.system_health where check_name = 'mfa_lockout'),
    'alert:' || :'boss', 'an alert opens, naming the admin by id (alerts leave the database)');

set local role auth_service;
select is(
    api.mfa_verify(:'boss', :'code_next',
        'the key of this test', sha256('a3'))::jsonb #>> '{problem,sqlstate}',
    'OX013', 'while locked, even a correct code is refused'
);
select throws_ok($$ select api.login_lookup('boss@example.com') $$, 'OX013', 'MFA_LOCKED',
    '... and the sign-in is refused before any password is checked');
reset role;

select crypto.clock_set('2026-11-24 09:20:01+09');
set local role auth_service;
select is(
    api.mfa_verify(:'boss', :'code_next',
        'the key of this test', sha256('a4'))::jsonb ->> 'role',
    'admin', 'after the lock, the correct code works again'
);
reset role;
select is((select status::text from crypto.system_health where check_name = 'mfa_lockout' order by id desc limit 1), 'ok',
    'the admin''s sign-in closes the alert');

-- A secret stored in plaintext before this change is encrypted on the next sign-in.
select tests.create_user('old@example.com') as old \gset
update crypto.users set role = 'admin', totp_secret = 'JBSWY3DPEHPK3PXP' where id = :'old';
set local role auth_service;
select is(
    api.mfa_verify(:'old', :'code',
        'the key of this test', sha256('o1'))::jsonb ->> 'role',
    'admin', 'a legacy plaintext secret still signs in'
);
reset role;
select is((select (totp_secret is null and totp_secret_enc is not null) from crypto.users where id = :'old'), true,
    '... and is now stored encrypted');

select * from finish();
rollback;
