-- The rate limiter in three statements, not six (issue 14, item 7). The
-- request's gate now counts the IP at once, before the call, like the
-- user's buckets; api.rate_limit_note, which counted it after the call,
-- is no longer needed.
--
-- Counting the IP first would hold the IP's row through the call, and every
-- player behind one NAT address shares that row. So a per-IP count is now
-- kept in one row per counting backend (shard = pg_backend_pid()): a
-- session only ever updates its own row, so no request waits for another's
-- row lock, and the IP's count is the sum of its rows (at most one per
-- database connection that served it in the window). Per-user buckets stay
-- in one row (shard 0): a player's own requests queue, and their limits
-- stay exact.
alter table crypto.rate_limits add column shard integer not null default 0;
alter table partman.template_crypto_rate_limits add column shard integer not null default 0;
alter table crypto.rate_limits drop constraint rate_limits_pkey;
alter table crypto.rate_limits add primary key (bucket, window_start, shard);
comment on column crypto.rate_limits.shard is
'The backend that counted these hits, for per-IP buckets (pg_backend_pid()); 0 for per-user buckets. '
'A bucket''s count in a window is the sum over its shards.';

-- p_count is gone (both count now); the gate takes the subjects its API
-- process wants a lease for (a default, so that the API before this
-- release, calling it with three arguments, still reaches it).
-- (A fresh database has no functions yet: the repeatable files come after.)
drop function if exists crypto.rate_limit_take(text, uuid, text[], boolean);
drop function if exists api.rate_limit_gate(text, uuid, text[]);
