-- What each callable function does and who calls it, so `\df+` tells an
-- auditor without the source. Last of the repeatable files (alphabetical), so
-- every function exists here. Covers every api function and every crypto one
-- a role may execute (tests/sql/190_function_comments.test.sql); those
-- already commented beside their body (operator_*.sql, settings.sql) keep it.

-- api: what the HTTP shim may call.

comment on function api.error_codes() is
'The error map (SQLSTATE, stable code, HTTP status) the shim reads at start-up as anon; oxp reads it too.';
comment on function api.environment() is
'Which environment this database is (production or not), so the shim and worker refuse to run with the wrong ENV.';
comment on function api.signup(text, text) is
'POST /v1/auth/signup: a new player from an email and the hash the shim computed (anon).';
comment on function api.login_lookup(text) is
'Password sign-in: the user and hash the shim verifies against, or a refusal for a locked email or admin (anon).';
comment on function api.login_failed(text) is
'Password sign-in: counts a wrong password against the email, known or not (anon).';
comment on function api.me() is
'GET /v1/users/me: the signed-in caller''s account (app_user, app_admin).';
comment on function api.issue_refresh(bytea) is
'Begins a refresh-token family for a player after a password or Google sign-in (app_user; never an admin''s).';
comment on function api.refresh(bytea, bytea) is
'POST /v1/auth/refresh: rotates a refresh token; a reused token revokes its family (anon).';
comment on function api.logout(bytea) is
'POST /v1/auth/logout: ends the session of a refresh token, saying nothing about whether it existed (anon).';
comment on function api.oauth_begin(text, text, text, text, bytea) is
'Google sign-in start: stores the single-use state, nonce and PKCE verifier bound to the browser (anon).';
comment on function api.oauth_consume(text, bytea) is
'Google sign-in callback: spends the state, only from the browser that began the flow (anon).';
comment on function api.oauth_login(text, text, text) is
'Google sign-in: the user for a verified ID token, by subject, else linked by email, else new (anon).';
comment on function api.mfa_verify(uuid, text, text, bytea) is
'Admin sign-in second step: checks the TOTP code and begins the admin''s refresh family (anon).';
comment on function api.verify_email(bytea) is
'POST /v1/auth/verify-email: spends the link and marks the email verified (anon).';
comment on function api.resend_verification() is
'POST /v1/auth/verify-email/resend: queues a verification email, at most one a minute (app_user).';
comment on function api.rate_limit(text, uuid, text[]) is
'Counts a request with no call to share, in a transaction of its own; says if any limit is over (anon).';
comment on function api.note_http_counts(bigint, bigint) is
'Each API process adds the requests it answered since its last report, for the metrics (anon).';
comment on function api.prometheus_gauges() is
'GET /metrics: queue, schedule, alert and game gauges from the database in one read (anon).';
comment on function api.session_today() is
'GET /v1/session/today: the current session, its times in KST and New York, and the caller''s day (anon, players).';
comment on function api.universe_today() is
'GET /v1/universe/today: the symbols of the session taking predictions (anon, players).';
comment on function api.submit_prediction(text, text, text) is
'POST /v1/predictions/{symbol}: places the caller''s UP or DOWN, under an optional Idempotency-Key (players).';
comment on function api.my_predictions(date, bigint, integer) is
'GET /v1/predictions: the caller''s predictions with results, newest first, in cursor pages (players).';
comment on function api.settlements(date) is
'GET /v1/settlements/{trading_day}: a settled day''s closes, changes and outcomes per symbol (anon, players).';
comment on function api.points_balance() is
'GET /v1/points/balance: the caller''s point balance (players).';
comment on function api.points_ledger(bigint, integer) is
'GET /v1/points/ledger: the caller''s ledger entries, newest first, in cursor pages (players).';
comment on function api.rewards() is
'GET /v1/rewards: the active rewards with price and stock (anon, players).';
comment on function api.redeem_reward(text, text) is
'POST /v1/rewards/{sku}/redeem: debits points and reserves a unit, or neither, under an Idempotency-Key (players).';
comment on function api.my_redemptions(bigint, integer) is
'GET /v1/rewards/redemptions: the caller''s redemptions, newest first, in cursor pages (players).';
comment on function api.ads() is
'GET /v1/ads: the ads on offer today with their reward (anon, players).';
comment on function api.click_ad(text, text) is
'POST /v1/ads/{id}/click: records an impression that the network''s callback may later reward (players).';
comment on function api.ad_ssv_reward(text, text, text, timestamp with time zone, jsonb) is
'GET /v1/ads/ssv, the ad network''s verified callback: pays an impression once per transaction id (ad_network only).';
comment on function api.admin_health() is
'GET /admin/health: database, pg_cron jobs, workers, batch runs, queue and open alerts (app_admin).';
comment on function api.admin_dashboard() is
'GET /admin/dashboard: the day''s figures, each job''s last run and the queue, from small reads (app_admin).';
comment on function api.admin_audit(
    text, text, text, timestamp with time zone, timestamp with time zone, integer, bigint
) is
'GET /admin/audit: the audit log filtered by action, actor, subject and time, in cursor pages (app_admin).';
comment on function api.admin_universe_upsert(date, text[]) is
'POST /admin/universe/upsert: sets a day''s symbols through crypto.set_universe; audited (app_admin).';
comment on function api.admin_reward_inventory(text, text, bigint, integer, boolean) is
'POST /admin/rewards/inventory: adds a SKU or changes its name, price, stock or active flag; audited (app_admin).';
comment on function api.admin_adjust_points(text, uuid, bigint, text, text) is
'POST /admin/users/adjust-points: by email or id, under the request''s Idempotency-Key; audited (app_admin).';
comment on function api.admin_user_disabled(uuid, boolean, text) is
'POST /admin/users/{id}/disable and /enable, with a reason; audited (app_admin).';
comment on function api.admin_settlement_manual(date, boolean) is
'POST /admin/settlement/manual: settles a day, missing closes as VOID if asked; audited (app_admin).';
comment on function api.admin_correct_settlement(date, jsonb, text) is
'POST /admin/settlement/correct: crypto.correct_settlement with the admin named in the audit (app_admin).';
comment on function api.admin_eod_trigger(date) is
'POST /admin/eod/trigger: fetch a finished day''s closes now, queues an eod.fetch job (app_admin).';
comment on function api.admin_load_eod_prices(jsonb) is
'POST /admin/eod/prices: closes from elsewhere, all rows or none, each refused row named; audited (app_admin).';
comment on function api.admin_integrity_check() is
'POST /admin/maintenance/integrity-check: runs the check now; returns the violations found (app_admin).';
comment on function api.admin_batches(integer) is
'GET /admin/batches: recent runs of every scheduled job, failures first (app_admin).';
comment on function api.admin_batch_run(text) is
'POST /admin/batches/{job}/run: one scheduled job now, by its pg_cron name (app_admin).';
comment on function api.admin_settings() is
'GET /admin/settings: every setting with its value, rule and last change (app_admin).';
comment on function api.admin_setting_set(text, text) is
'One setting changed, checked by its rule; audited (app_admin).';
comment on function api.admin_settings_patch(jsonb) is
'PATCH /admin/settings: several settings at once, each by its rule, all or none; audited (app_admin).';
comment on function api.admin_ad_upsert(text, text, text, bigint, boolean) is
'POST and PATCH /admin/ads: creates an ad or changes its title, reward or whether it is shown; audited (app_admin).';
comment on function api.admin_metrics(date, date) is
'GET /v1/metrics/{report} (admins): the daily business metrics of a range of days (app_admin).';

-- crypto: granted to oxp_service (worker, oxp, pg_cron), app_admin, app_user, auditor.

comment on function crypto.now() is
'The one clock every time decision reads; shiftable outside production (every role).';
comment on function crypto.clock_set(timestamp with time zone) is
'oxp clock set: shifts the database clock outside production (oxp_service).';
comment on function crypto.clock_reset() is
'oxp clock reset: the database clock back to real time (oxp_service).';
comment on function crypto.kst(timestamp with time zone) is
'A time as KST text, the zone of every time in a response (every role but anon).';
comment on function crypto.new_york(timestamp with time zone) is
'A time as New York text with its offset on that date, given beside KST (every role but anon).';
comment on function crypto.auth_uid() is
'The signed-in user''s id from the request''s JWT claims, for row-level security (every role).';
comment on function crypto.error_code(text) is
'The stable error code of a SQLSTATE, from crypto.error_codes (app_admin, oxp_service).';
comment on function crypto.problem(text, text) is
'A refusal to remember as {"problem": ...}, answered by the shim as a raised error would be (rule functions).';
comment on function crypto.try_date(text) is
'An ISO date or null, for validators that list every bad row of a batch (app_admin, oxp_service).';
comment on function crypto.try_numeric(text) is
'A number or null, for validators that list every bad row of a batch (app_admin, oxp_service).';
comment on function crypto.adjust_points(text, bigint, text, text) is
'oxp points adjust and the admin route: a transfer with the adjustments account, never below zero; audited.';
comment on function crypto.adjustment_key(text, bigint, text) is
'oxp points adjust without --key: a key from the adjustment and the KST day, so a rerun pays once (oxp_service).';
comment on function crypto.audit_search(
    text, text, text, timestamp with time zone, timestamp with time zone, integer, bigint
) is
'The audit log filtered by action, actor, subject and time, in cursor pages (oxp audit search, auditor).';
comment on function crypto.audit_verify() is
'Walks the sealed audit chain and names the first row whose hash or link is wrong (oxp, admins, auditor).';
comment on function crypto.audit_seal() is
'pg_cron: links every final audit row into the hash chain, one sealer at a time (oxp_service, app_admin).';
comment on function crypto.set_user_disabled(uuid, boolean, text) is
'oxp users disable/enable: refuses or readmits a user and ends their sessions; audited (oxp_service).';
comment on function crypto.alert_delivered(bigint, text, text) is
'The worker records an alert transition as posted to one webhook (oxp_service).';
comment on function crypto.evaluate_alerts() is
'pg_cron every minute: opens the alerts whose condition holds and clears the rest (oxp_service).';
comment on function crypto.alerts_list(boolean) is
'Open alerts, most severe first, optionally with the last 7 days'' resolved ones (oxp alerts, admins, auditor).';
comment on function crypto.resolve_alert(bigint, text) is
'A person resolves an alert with a reason; audited (oxp alerts resolve, admin route).';
comment on function crypto.alert_delivery(bigint, text) is
'The worker''s view of an alert transition to post and the webhooks that already have it (oxp_service).';
comment on function crypto.check_settlement_payout(date) is
'Compares a settled day''s payout with what its winners should hold (oxp_service, via pg_cron).';
comment on function crypto.award_key(date, bigint) is
'The ledger key of a prediction''s award, with an ISO date whatever the DateStyle (rules, oxp, auditor).';
comment on function crypto.prediction_points(bigint, date) is
'Points a prediction holds: its award plus corrections since (admins, oxp_service, auditor).';
comment on function crypto.prediction_award(bigint, date) is
'Points a prediction earned under its current result (admins, oxp_service, auditor).';
comment on function crypto.correct_settlement(date, jsonb, text) is
'oxp session correct: fixes closes and moves the points of every prediction whose result flips; audited.';
comment on function crypto.sync_calendar(jsonb) is
'The worker and oxp calendar sync: stores the NYSE calendar with each day''s cutoff (oxp_service).';
comment on function crypto.email_verification_issue(uuid, bytea) is
'The worker, before mailing a link: stores the link''s hash with the address (oxp_service).';
comment on function crypto.verify_email_by_operator(text) is
'oxp users verify: an operator vouches for a user''s email; audited (oxp_service).';
comment on function crypto.load_eod_price(date, text, numeric, text, timestamp with time zone) is
'Stores one close as the fetch got it; the same value again is a no-op (worker, oxp, admins).';
comment on function crypto.eod_prices_problems(jsonb, boolean) is
'Every refused row of a batch of closes, none stored, for the operator to fix at once (oxp, admins).';
comment on function crypto.load_eod_prices(jsonb, text) is
'oxp eod load and the admin route: a file of closes, all rows or none.';
comment on function crypto.eod_fetch_plan(date) is
'The closes a fetch for a trading day must bring and whether they are final yet (worker, oxp, admins).';
comment on function crypto.log_eod_fetch(date, text, timestamp with time zone, crypto.run_status, integer, text) is
'The worker records one price-fetch attempt and its outcome (oxp_service).';
comment on function crypto.eod_fetch_needed(date) is
'Whether an eod.fetch job still has work: not once its day is settled (worker, admins).';
comment on function crypto.expire_auth_rows() is
'pg_cron: deletes sign-in rows that can matter no more after the retention period (oxp_service).';
comment on function crypto.check_calendar_runway() is
'pg_cron and health: records whether the calendar reaches 60 days ahead (oxp_service, app_admin).';
comment on function crypto.worker_heartbeat(text, jsonb) is
'The worker reports it is alive, with its state, for health and alerts (oxp_service).';
comment on function crypto.integrity_violations() is
'Every broken invariant of points, stock and settlement; none when healthy (oxp integrity, admins, auditor).';
comment on function crypto.run_integrity_check(boolean) is
'pg_cron daily: checks what was written since the last clean run (everything weekly or when asked), records '
'the findings, alerts on any, moves the players'' ledger checkpoints on when clean; returns the count.';
comment on function crypto.integrity_violations(timestamptz) is
'The integrity checks over what was written since a time (-infinity: everything), continuing each player''s '
'balance chain from their checkpoint (run_integrity_check alone; integrity_violations() is everything).';
comment on function crypto.enqueue_job(text, jsonb, text, integer) is
'Queues work for the sidecar worker, once per key (rules, oxp, admins).';
comment on function crypto.claim_job(text[]) is
'The worker claims the next due job of the given kinds, skipping locked ones (oxp_service).';
comment on function crypto.complete_job(bigint, integer) is
'The worker marks a claimed job done, if its attempt still holds it, from the claiming session (oxp_service).';
comment on function crypto.fail_job(bigint, integer, text) is
'The worker records a job''s failure from the claiming session: backs off, then dead after its attempts (oxp_service).';
comment on function crypto.job_json(crypto.jobs) is
'A job as JSON for oxp jobs and the admin routes (oxp_service, admins, auditor).';
comment on function crypto.unknown_symbols(text[]) is
'The symbols of a list no one has vouched for: not known and never priced (oxp, admins, auditor).';
comment on function crypto.compute_daily_metrics(date) is
'Recomputes a day''s metrics row from the books (oxp metrics, admins).';
comment on function crypto.rollup_metrics() is
'pg_cron every 10 minutes: recomputes the metrics of the open day and of days whose books changed.';
comment on function crypto.daily_metrics_range(date, date) is
'The metrics rows of a range of trading days, oldest first (oxp metrics, admins, auditor).';
comment on function crypto.rate_limit_cleanup() is
'pg_cron: deletes rate-limit windows older than the longest rule (oxp_service).';
comment on function crypto.void_reason(crypto.settlement_outcome, numeric, numeric) is
'Why a symbol is VOID: threshold or missing_price (oxp, admins, auditor).';
comment on function crypto.change_percent(numeric) is
'A change in percent as text, 4 places truncated toward zero (oxp, admins, auditor).';
comment on function crypto.reward_json(crypto.rewards_inventory) is
'A reward SKU as JSON for oxp and the admin routes (oxp_service, admins, auditor).';
comment on function crypto.redemption_json(crypto.rewards_redemptions) is
'A redemption as JSON for oxp and the admin routes (oxp_service, admins, auditor).';
comment on function crypto.redemption_issued(bigint, text) is
'The worker records the vendor''s code for a redemption: ISSUED (oxp_service).';
comment on function crypto.redemption_failed(bigint, text) is
'A vendor refusal without the call''s number: refunded only if REQUESTED and unmarked (oxp_service).';
comment on function crypto.cancel_redemption(bigint, text) is
'oxp rewards cancel and the admin route: cancels a requested redemption, refunding points and unit; audited.';
comment on function crypto.upsert_reward(text, text, bigint, integer, boolean) is
'oxp rewards add and the admin route: adds or changes a SKU, never below reserved stock; audited.';
comment on function crypto.eod_deadline(date) is
'Until when a finished day''s closes are waited for before VOID (oxp, admins, auditor).';
comment on function crypto.schedule_tick(text) is
'pg_cron jobs and oxp schedule tick: runs everything due at crypto.now() and records the run (oxp_service).';
comment on function crypto.open_session(date) is
'Opens a trading day''s session for predictions (schedule, oxp session open).';
comment on function crypto.close_session(date) is
'Closes a session at its cutoff: OPEN to CLOSED (schedule, oxp, admins).';
comment on function crypto.begin_settling(date) is
'Moves a session from CLOSED to SETTLING (schedule, oxp, admins).';
comment on function crypto.finish_settling(date) is
'Moves a session from SETTLING to SETTLED (schedule, oxp, admins).';
comment on function crypto.current_session() is
'Today for a player: the open session, else the latest one (oxp, admins, auditor).';
comment on function crypto.prev_trading_day(date) is
'The NYSE trading day before a date (oxp, admins, auditor).';
comment on function crypto.next_trading_day(date) is
'The NYSE trading day after a date (oxp, admins, auditor).';
comment on function crypto.next_session_day() is
'The next session to open: the first trading day with its cutoff ahead and no session (oxp, admins, auditor).';
comment on function crypto.settle_session(date, boolean) is
'Settles a closed day from its closes and pays the winners, optionally missing closes as VOID (schedule, oxp, admins).';
comment on function crypto.prediction_outcome(crypto.prediction_choice, crypto.settlement_outcome) is
'A prediction''s outcome from its symbol''s settlement, never stored (auditor).';
comment on function crypto.prediction_won(crypto.prediction_choice, crypto.settlement_outcome) is
'The one definition of a win: the choice matches the decided direction (auditor).';
comment on function crypto.setting_rule_text(text) is
'A setting''s rule as a person reads it, such as "integer 1 to 100" (oxp, admins, auditor).';
comment on function crypto.make_admin(text, text, text) is
'oxp users create-admin: makes a user an admin with a new TOTP secret; audited (oxp_service).';
comment on function crypto.set_universe(date, text[], boolean) is
'oxp universe set and the admin route: sets a day''s symbols, refusing unknown tickers unless allowed; audited.';
