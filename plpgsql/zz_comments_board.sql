-- The leaderboard, streaks and accuracy (issue 13, item 3).
comment on function api.leaderboard(text, integer, text) is
'GET /v1/leaderboard: players by points won in settled sessions for the week, month or all time (then wins, '
'then a fixed order of ids), with accuracy = wins / decided once a player has leaderboard.min_decided decided '
'predictions; nicknames only; keyset pages (next_cursor is sealed: no id in it, no forged one opens; '
'it pins its period); public.';
comment on function api.set_nickname(text) is
'POST /v1/users/me/nickname: the caller''s public nickname (2 to 20 characters, unique regardless of case), audited.';
comment on function crypto.leaderboard_refresh(date) is
'Recomputes the leaderboard rows and the streaks of a settled day''s players from the settled facts '
'(crypto.rollup_metrics runs it when the day''s books move; idempotent).';
comment on function crypto.leaderboard_start(text, date) is
'The first day of the week, month or all-time period a trading day belongs to (the leaderboard''s periods).';
comment on function api.user_stats() is
'GET /v1/users/stats: the caller''s wins, losses, VOIDs, points earned, streaks and accuracy (players). '
'A streak is a run of consecutive won predictions among the decided ones (WON or LOST) in the order of '
'trading day, then symbol: a loss ends it, a VOID neither extends nor breaks it, an unsettled day does not '
'count. current_streak ends at the latest decided prediction (0 if it lost), best_streak is the longest run. '
'accuracy = {week, month, all}: wins / decided in the period that holds today (New York date), rounded to 4 '
'places, null when nothing is decided. Both come from rollups refreshed after settlement (crypto.rollup_metrics), '
'so they can trail a settlement by one rollup (10 minutes).';
