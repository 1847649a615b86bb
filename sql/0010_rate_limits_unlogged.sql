-- Rate-limit counters are worth less than the commit that waits for them to
-- reach disk: after a crash they start from zero, which only forgives a
-- minute of requests. Unlogged, they write no WAL and wait for no flush.
alter table crypto.rate_limits set unlogged;

-- api.rate_limit reads its rules itself now (plpgsql/rate_limit.sql).
drop function if exists crypto.rate_limit_rules(text, uuid, text[]);
