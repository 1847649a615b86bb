-- Behind PgBouncer the API sends a request's statements one by one (no
-- pipeline: db.new_pool), so a request's counter rows (the player's and its
-- session's share of the IP's, from the rate-limit gate) stay locked across
-- round trips until COMMIT. An API process stalled
-- mid-request (CPU-starved, paused, a bug) must not hold them, or a server
-- connection, for longer than this: the server ends such a session
-- (SQLSTATE 25P03), the request is answered DATABASE_UNAVAILABLE (503) and
-- the pool replaces the connection. No request idles in its transaction for
-- more than milliseconds; the statement timeouts (5 s, admin 30 s) bound the
-- rest. Here, not in a versioned file: a role's settings are the cluster's,
-- and a dump loaded into a new cluster (oxp db load) does not carry them;
-- every migrate sets them again. New sessions only: PgBouncer's older server
-- connections take it when they are recycled (README "Connection pooling").
alter role authenticator set idle_in_transaction_session_timeout = '10s';
alter role admin_authenticator set idle_in_transaction_session_timeout = '10s';

-- A request's first statement, the rate-limit gate (db.RATE_LIMIT_GATE),
-- runs before it sets its own statement_timeout for the rest (5 s, the
-- API's default): this bounds that one statement alike, should it wait on a
-- player's row that a stuck request holds.
alter role authenticator set statement_timeout = '5s';
