begin;
select plan(3);

-- Behind PgBouncer a request's statements go one by one, its counter rows
-- locked across round trips: a stalled API process may not keep them.
select ok(
    (select s.setconfig @> array['idle_in_transaction_session_timeout=10s'] from pg_db_role_setting as s
     where s.setrole = 'authenticator'::regrole and s.setdatabase = 0),
    'the API''s login ends a session idle in its transaction for 10 s'
);
select ok(
    (select s.setconfig @> array['idle_in_transaction_session_timeout=10s'] from pg_db_role_setting as s
     where s.setrole = 'admin_authenticator'::regrole and s.setdatabase = 0),
    'so does the admin API''s login'
);
select ok(
    (select s.setconfig @> array['statement_timeout=5s'] from pg_db_role_setting as s
     where s.setrole = 'authenticator'::regrole and s.setdatabase = 0),
    'a request''s first statement, the gate, is bounded before the request sets its own timeout'
);
select * from finish();
rollback;
