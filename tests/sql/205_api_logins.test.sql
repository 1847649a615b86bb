begin;
select plan(3);

-- Behind PgBouncer a request's statements go one by one, its counter rows
-- locked across round trips: a stalled API process may not keep them.
select ok(
    tests.role_sets('authenticator', 'idle_in_transaction_session_timeout=10s'),
    'the API''s login ends a session idle in its transaction for 10 s'
);
select ok(
    tests.role_sets('admin_authenticator', 'idle_in_transaction_session_timeout=10s'),
    'so does the admin API''s login'
);
select ok(
    tests.role_sets('authenticator', 'statement_timeout=5s'),
    'a request''s first statement, the gate, is bounded before the request sets its own timeout'
);
select * from finish();
rollback;
