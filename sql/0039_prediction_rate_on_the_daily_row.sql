-- A player's prediction rate (SPEC §5: 5 a minute, 30 an hour) is kept on
-- their daily-limits row, which crypto.place_prediction already holds
-- locked and updates for every accepted prediction (plpgsql/rate_limit.sql,
-- crypto.prediction_rate). The check no longer reads crypto.rate_limits nor
-- writes two buckets there: a cached plan over that partitioned table
-- locked every partition and index of it, in each prediction (README
-- "Benchmarks").
-- Per limit, the latest window a prediction was counted in and the counts
-- of it and of the two windows before it: what a check at any moment of
-- the session can need (the window before its own, its own, and the one
-- after, where a submission that began later may have counted first).
create type crypto.rate_window as (
    at timestamptz,
    hits integer []
);
comment on type crypto.rate_window is
'One per-player limit''s windows: the latest window counted in (at) and the counts of the two windows before it '
'and of it (hits[1..3], hits[3] = at''s).';

-- Null until the player's first accepted prediction of the session. Adding
-- a column without a default rewrites nothing.
alter table crypto.user_daily_limits add column rate_minute crypto.rate_window,
add column rate_hour crypto.rate_window;
comment on column crypto.user_daily_limits.rate_minute is
'The player''s accepted predictions per minute window this session (crypto.prediction_rate).';
comment on column crypto.user_daily_limits.rate_hour is
'The player''s accepted predictions per hour window this session (crypto.prediction_rate).';

comment on table crypto.rate_limits is
'Sliding-window counters shared by every API process: requests per IP and point reads per user (the gate). '
'A player''s prediction rate is on their daily-limits row (crypto.prediction_rate).';

-- The counts in crypto.rate_limits' prediction buckets at the deploy are
-- not carried over: for at most an hour a player may place up to one
-- window's allowance more than the rate (the daily limit, the money rule,
-- is on this row and unchanged). The buckets age out with their partitions.
