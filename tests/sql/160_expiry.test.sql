begin;
select plan(8);

-- Rows older than retention.expired_days (30) past their end go; live ones stay.
select crypto.clock_set('2026-01-01 09:00:00+09');
select tests.create_user('x@example.com') as x \gset
select api.oauth_begin(repeat('o', 43), repeat('n', 43), 'v', 'http://cb', sha256('b'));
select tests.authenticate_as(:'x', 'auth_service');
select api.issue_refresh(sha256('dead1'));
select tests.clear_authentication();
select api.logout(sha256('dead1'));
set local role oxp_service;
select crypto.email_verification_issue(:'x', sha256('link'));
reset role;
insert into crypto.idempotent_requests (scope, key, request_hash, response, created_at)
values ('test', 'old', 'h', '{}', crypto.now());
insert into crypto.auth_failures (kind, subject, at) values ('login', 'x@example.com', crypto.now());

select crypto.clock_set('2026-02-15 09:00:00+09');
select tests.authenticate_as(:'x', 'auth_service');
select api.issue_refresh(sha256('live1'));
select tests.clear_authentication();
select api.refresh(sha256('live1'), sha256('live2'));
insert into crypto.idempotent_requests (scope, key, request_hash, response, created_at)
values ('test', 'new', 'h', '{}', crypto.now());

set local role app_user;
select throws_ok($$ select crypto.expire_auth_rows() $$, '42501', null, 'a user cannot run the expiry');
reset role;
set local role oxp_service;
select is(crypto.expire_auth_rows()::jsonb,
    '{"oauth_states": 1, "refresh_tokens": 1, "email_verifications": 1, "idempotent_requests": 1, "auth_failures": 1}'::jsonb,
    'the expiry deletes what ended more than 30 days ago');
reset role;
select is((select count(*)::int from crypto.oauth_states), 0, 'expired sign-in states go');
select is((select array_agg(encode(token_hash, 'hex') order by id) from crypto.refresh_tokens),
    array[encode(sha256('live1'), 'hex'), encode(sha256('live2'), 'hex')],
    'a live family stays whole, its spent token too (it still catches a replay)');
select is((select array_agg(key) from crypto.idempotent_requests where scope = 'test'), array['new'],
    'idempotent requests go after 30 days');
select is((select count(*)::int from crypto.email_verifications), 0, 'expired links go');
select is((select count(*)::int from crypto.auth_failures), 0, 'old failures go');
select is((select crypto.expire_auth_rows()::jsonb ->> 'refresh_tokens'), '0', 'running it again deletes nothing more');

select * from finish();
rollback;
