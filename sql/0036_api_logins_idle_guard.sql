-- Behind PgBouncer the API sends a request's statements one by one (no
-- pipeline: db.new_pool), so a request's counter rows (the player's, from
-- the rate-limit gate; the IP's, shared behind a NAT address, from the note)
-- stay locked across round trips until COMMIT. An API process stalled
-- mid-request (CPU-starved, paused, a bug) must not hold them, or a server
-- connection, for longer than this: the server ends such a session, the
-- request fails as DATABASE_UNAVAILABLE (503) and the pool replaces the
-- connection. No request idles inside its transaction for more than a few
-- milliseconds; the statement timeouts (5 s, admin 30 s) bound the rest.
alter role authenticator set idle_in_transaction_session_timeout = '10s';
alter role admin_authenticator set idle_in_transaction_session_timeout = '10s';
