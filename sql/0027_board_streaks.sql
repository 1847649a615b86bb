-- Issue 13, item 3 (the rest): win streaks per player in a rollup beside
-- the leaderboard's, and the board paged by a keyset cursor.

-- One row per player who has played a settled day: the streaks over the
-- decided predictions (WON or LOST) in the order of trading day, then
-- symbol. Recomputed from the settled facts by crypto.leaderboard_refresh
-- for the players of a day that settles or is corrected (pg_cron, through
-- crypto.rollup_metrics), never computed per request.
create table crypto.user_streaks (
    user_id uuid primary key references crypto.users (id),
    current_streak integer not null check (current_streak >= 0),
    best_streak integer not null check (best_streak >= current_streak),
    refreshed_at timestamptz not null
);
alter table crypto.user_streaks enable row level security;
grant select on crypto.user_streaks to auditor;

-- The board's order is now points, wins, then the player's id, all
-- descending, so a page after a cursor (points, wins, id) is one backward
-- range of this index: (points, wins, user_id) < (cursor).
drop index if exists crypto.leaderboard_rank;
create index leaderboard_rank
on crypto.leaderboard (period, period_start, points, wins, user_id);

-- The cursor is an opaque string now, no longer an offset.
drop function if exists api.leaderboard(text, integer, bigint);

-- A player's settled day: what the week, month and all-time rows add up,
-- so a refresh reads each prediction's award once (when its day settles
-- or is corrected) instead of every award of the player's history again.
create table crypto.leaderboard_days (
    user_id uuid not null references crypto.users (id),
    trading_day date not null,
    points bigint not null check (points >= 0),
    wins integer not null check (wins >= 0),
    losses integer not null check (losses >= 0),
    voids integer not null check (voids >= 0),
    refreshed_at timestamptz not null,
    primary key (user_id, trading_day)
);
create index leaderboard_days_by_day on crypto.leaderboard_days (trading_day);
alter table crypto.leaderboard_days enable row level security;
grant select on crypto.leaderboard_days to auditor;

-- Existing boards: the next rollup (pg_cron, crypto.rollup_metrics)
-- recomputes every day as if its books had moved, which refreshes each
-- settled day's rows, the periods and the streaks through the one path
-- that keeps them afterwards. A new database has no row to mark.
update crypto.daily_metrics set books_stamp = null;
