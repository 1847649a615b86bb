-- Comments on the helpers that give each repeated rule one home (issue 10
-- item 3); CONVENTIONS.md lists them with their tests.
comment on function crypto.award_key_prefix(date) is
'What every award key of a trading day starts with (settlement:<ISO day>:), to find its awards (oxp, auditor).';
comment on function crypto.award_key_prediction(text) is
'The prediction id an award key pays, or null for any other ledger key (audit views, oxp, auditor).';
comment on function crypto.award_key_day(text) is
'The trading day an award key pays for, or null for any other ledger key: with award_key_prediction, '
'a prediction''s key.';
comment on function crypto.lock_daily_limits(uuid, date) is
'A player''s limits row of a session, created if need be and locked: serialises predictions, ad clicks and ad rewards.';
comment on function crypto.require_trading_day(date) is
'The calendar row of a trading day, or NOT_A_TRADING_DAY (OX108): the one refusal of a day the NYSE does not trade.';
comment on function crypto.require_session(date) is
'A day''s session, or NO_SESSION (OX105); a null day means no session has opened yet.';
comment on function crypto.idempotency_refusal(text, text, text, text, text) is
'Stores a refusal under an Idempotency-Key when error_codes marks its SQLSTATE remembered_by_idempotency_key.';
comment on function crypto.setting_interval(text) is
'A duration setting as an interval, in the unit its key ends with (_seconds, _minutes, _hours, _days).';
comment on function crypto.require_idempotency_key(text, text, integer) is
'Refuses a spending or paying request without an Idempotency-Key of 1 to p_max characters (VALIDATION_FAILED).';
comment on function crypto.rate_limit_retry_after(numeric, numeric, numeric, numeric, numeric, numeric) is
'Seconds until one more request fits a sliding-window limit: the Retry-After of the gate and of prediction_rate.';
comment on function crypto.prediction_rate(crypto.user_daily_limits, timestamptz) is
'Would one more accepted prediction pass a player''s limit a minute or an hour? From their locked daily-limits row.';
comment on function crypto.rate_window_hits(crypto.rate_window, timestamptz, integer) is
'One per-player limit''s counts of the window before now''s, now''s and the next, from a daily-limits row.';
comment on function crypto.rate_window_count(crypto.rate_window, timestamptz, integer) is
'The same windows with one accepted prediction counted in now''s (crypto.place_prediction).';
comment on function crypto.prediction_exists(text, date) is
'Refuses a second prediction of a symbol for a trading day (PREDICTION_EXISTS): one per player, day and symbol.';
