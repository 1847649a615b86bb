begin;
select plan(7);

-- Ten wrong passwords for one email in 15 minutes, from anywhere: the email
-- is refused (429) before any password is checked, whether or not it exists.
select crypto.clock_set('2026-11-24 09:00:00+09');
select tests.create_user('p@example.com');
set local role auth_service;
select api.login_failed('P@example.com') from generate_series(1, 9);
select is(api.login_lookup('p@example.com')::jsonb ->> 'email', 'p@example.com', 'nine failures: still answered');
select api.login_failed('p@example.com');
select throws_ok($$ select api.login_lookup('p@example.com') $$, 'OX005', 'RATE_LIMITED', 'the tenth locks the email');
select is(api.login_lookup('other@example.com')::text, null, 'another email is not affected');
select api.login_failed('ghost@example.com') from generate_series(1, 10);
select throws_ok($$ select api.login_lookup('ghost@example.com') $$, 'OX005', 'RATE_LIMITED',
    'an email without an account is counted the same (no existence oracle)');
reset role;
select crypto.clock_set('2026-11-24 09:15:01+09');
set local role auth_service;
select is(api.login_lookup('p@example.com')::jsonb ->> 'email', 'p@example.com', 'the window passes');
reset role;

-- Only the shim's sign-in role records failures, and no role writes the table directly.
select tests.authenticate_as(tests.create_user('u@example.com'));
select throws_ok($$ select api.login_failed('p@example.com') $$, '42501', null, 'a user cannot record failures');
select throws_ok($$ delete from crypto.auth_failures $$, '42501', null, 'nor erase them');
select tests.clear_authentication();

select * from finish();
rollback;
