begin;
select plan(25);

select crypto.clock_set('2026-11-24 09:00:00+09');

-- After sign-up the shim asks for the mail; the worker stores the link's hash.
set local role anon;
select api.signup('V@example.com', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA') ->> 'id' as v \gset
reset role;
select tests.authenticate_as(:'v');
select api.resend_verification();
select tests.clear_authentication();
select is((select payload ->> 'user_id' from crypto.jobs where kind = 'email.verify'), :'v',
    'a verification mail is a job for the worker');
select is((select email_verified_at from crypto.users where id = :'v'), null, 'a new password account is unverified');
set local role oxp_service;
select is(crypto.email_verification_issue(:'v', sha256('link1'))::jsonb ->> 'email', 'v@example.com',
    'the worker stores a link for the address');
reset role;

-- Who may do what.
select tests.authenticate_as(:'v');
select throws_ok($$ select crypto.email_verification_issue(crypto.auth_uid(), sha256('forged')) $$, '42501', null,
    'a user cannot make links');
select throws_ok($$ select crypto.verify_email_by_operator('v@example.com') $$, '42501', null,
    'a user cannot vouch for an email');
select tests.clear_authentication();
set local role anon;
select throws_ok($$ select api.resend_verification() $$, '42501', null, 'anon cannot ask for a mail');
select throws_ok($$ select crypto.verify_email_by_operator('v@example.com') $$, '42501', null,
    'anon cannot vouch for an email');
set local role auth_service;

-- The link: unknown, then good once.
select throws_ok($$ select api.verify_email(sha256('not a link')) $$, 'OX014', 'EMAIL_LINK_INVALID', 'an unknown link');
select is(api.verify_email(sha256('link1'))::jsonb ->> 'email', 'v@example.com', 'the link verifies the email');
select throws_ok($$ select api.verify_email(sha256('link1')) $$, 'OX014', 'EMAIL_LINK_INVALID', 'once');
reset role;
select is((select email_verified_at from crypto.users where id = :'v'), '2026-11-24 09:00:00+09'::timestamptz,
    'the account is verified');
select ok(exists (select from crypto.audit_logs where action = 'auth.email_verified' and subject = :'v'),
    'verification is audited');
set local role oxp_service;
select is(crypto.email_verification_issue(:'v', sha256('link2'))::text, null, 'nothing to send once verified');
reset role;

-- Expiry, and a link for an address the account no longer has.
select tests.create_user('e@example.com') as e \gset
set local role oxp_service;
select crypto.email_verification_issue(:'e', sha256('old'));
reset role;
select crypto.clock_set('2026-11-25 09:00:01+09');
set local role auth_service;
select throws_ok($$ select api.verify_email(sha256('old')) $$, 'OX014', 'EMAIL_LINK_INVALID', 'a link expires after 24 hours');
reset role;
set local role oxp_service;
select crypto.email_verification_issue(:'e', sha256('moved'));
reset role;
update crypto.users set email = 'e2@example.com' where id = :'e';
set local role auth_service;
select throws_ok($$ select api.verify_email(sha256('moved')) $$, 'OX014', 'EMAIL_LINK_INVALID',
    'a link verifies only the address it was sent to');
reset role;

-- Resend: at most one job a minute; nothing once verified.
select tests.authenticate_as(:'e');
select is(api.resend_verification()::jsonb ->> 'queued', 'true', 'an unverified user can ask again');
select api.resend_verification();
select tests.clear_authentication();
select is((select count(*)::int from crypto.jobs where kind = 'email.verify' and payload ->> 'user_id' = :'e'), 1,
    '... once a minute');

-- The operator's word, audited.
set local role oxp_operator;
select is(crypto.verify_email_by_operator('E2@example.com')::jsonb ->> 'email', 'e2@example.com', 'an operator verifies');
select throws_ok($$ select crypto.verify_email_by_operator('nobody@example.com') $$, 'OX004', 'NOT_FOUND', 'an unknown email');
reset role;
select ok(exists (select from crypto.audit_logs where action = 'user.email_verified'
    and subject = (select id::text from crypto.users where email = 'e2@example.com')),
    'the operator''s verification is audited');

-- Google and an account nobody verified: the password and sessions go.
select tests.create_user('victim@example.com') as pre \gset
select tests.authenticate_as(:'pre', 'auth_service');
select api.issue_refresh(sha256('attacker'));
select tests.clear_authentication();
select api.oauth_begin(repeat('s', 43), repeat('n', 43), 'verifier', 'http://cb', sha256('browser'));
select api.oauth_consume(repeat('s', 43), sha256('browser'));
select is(api.oauth_login(repeat('s', 43), 'g-victim', 'victim@example.com')::jsonb ->> 'id', :'pre',
    'Google sign-in takes over the unverified account');
select is(
    (select (password_hash is null, google_sub, email_verified_at is not null) from crypto.users where id = :'pre'),
    (true, 'g-victim'::text, true), '... removing the password set by whoever signed up');
select is((select count(*)::int from crypto.refresh_tokens where user_id = :'pre' and revoked_at is null), 0,
    '... and every session begun with it');
select set_config('request.jwt.claims', json_build_object('sub', :'pre', 'role', 'app_user',
    'iat', extract(epoch from statement_timestamp())::bigint - 60)::text, true);
select throws_ok($$ select crypto.require_user() $$, 'OX001', 'INVALID_TOKEN',
    '... and every access token issued before');
select set_config('request.jwt.claims', json_build_object('sub', :'pre', 'role', 'app_user',
    'iat', extract(epoch from statement_timestamp())::bigint + 1)::text, true);
select is(crypto.require_user(), :'pre'::uuid, 'a token issued since is good');
select set_config('request.jwt.claims', '', true);

select * from finish();
rollback;
