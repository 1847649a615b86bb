begin;
select plan(6);

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
-- The other logins are bounded too, more loosely (00_login_idle_limits.sql):
-- a stuck worker or a forgotten psql session holds locks and vacuum's horizon.
select ok(
    tests.role_sets('oxp_service', 'idle_in_transaction_session_timeout=5min'),
    'the worker''s login ends a session idle in its transaction for 5 minutes'
);
select ok(
    tests.role_sets('oxp_operator', 'idle_in_transaction_session_timeout=15min'),
    'an operator''s login, for a quarter of an hour'
);
select ok(
    tests.role_sets('auditor', 'idle_in_transaction_session_timeout=30min'),
    'an auditor''s read-only session, for half an hour'
);
select * from finish();
rollback;
