begin;
select plan(37);

-- Every function of ours (every schema but PostgreSQL's and the tests') a
-- role may execute, directly or through a role it inherits.
create function pg_temp.executable(p_role text) returns setof text
language sql stable
as $$
    select p.oid::regprocedure::text
    from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
    where n.nspname not in ('pg_catalog', 'information_schema', 'public', 'tests')
        and n.nspname not like 'pg\_%'
        and has_function_privilege(p_role, p.oid, 'execute')
$$;

-- The allow-list: a new grant (or a lost one) fails here until it is listed.
-- anon: sign-up and the public reads, nothing of the sign-in path.
select set_eq(
    $$ select * from pg_temp.executable('anon') $$,
    array[
        'api.ads()',
        'api.environment()',
        'api.error_codes()',
        'api.leaderboard(text,integer,text)',
        'api.rewards()',
        'api.session_today()',
        'api.settlements(date)',
        'api.signup(text,text)',
        'api.universe_today()',
        'crypto.auth_uid()',
        'crypto.now()'
    ]::text[],
    'anon executes exactly its list'
);

-- auth_service: the sign-in helpers, only through the shim (authenticator).
select set_eq(
    $$ select * from pg_temp.executable('auth_service') $$,
    array[
        'api.issue_refresh(bytea)',
        'api.login_failed(text)',
        'api.login_lookup(text)',
        'api.logout(bytea)',
        'api.mfa_verify(uuid,text,text,bytea)',
        'api.note_http_counts(bigint,bigint)',
        'api.oauth_begin(text,text,text,text,bytea)',
        'api.oauth_consume(text,bytea)',
        'api.oauth_login(text,text,text)',
        'api.prometheus_gauges()',
        'api.rate_limit(text,uuid,text[])',
        'api.rate_limit_gate(text,uuid,text[],text[])',
        'api.rate_limit_note(text,uuid,text[])',
        'api.refresh(bytea,bytea)',
        'api.verify_email(bytea)'
    ]::text[],
    'auth_service executes exactly its list'
);

-- app_user: a player's own API.
select set_eq(
    $$ select * from pg_temp.executable('app_user') $$,
    array[
        'api.ads()',
        'api.click_ad(text,text)',
        'api.leaderboard(text,integer,text)',
        'api.me()',
        'api.my_predictions(date,bigint,integer)',
        'api.my_redemptions(bigint,integer)',
        'api.points_balance()',
        'api.points_ledger(bigint,integer)',
        'api.redeem_reward(text,text)',
        'api.resend_verification()',
        'api.rewards()',
        'api.session_today()',
        'api.set_nickname(text)',
        'api.settlements(date)',
        'api.submit_prediction(text,text,text)',
        'api.universe_today()',
        'api.user_stats()',
        'crypto.auth_uid()',
        'crypto.kst(timestamp with time zone)',
        'crypto.new_york(timestamp with time zone)',
        'crypto.now()',
        'crypto.problem(text,text)'
    ]::text[],
    'app_user executes exactly its list'
);

-- app_admin: the admin routes (only through admin_authenticator); no crypto definer function but
-- the clock: those are reached through api.admin_*, which check the admin (zz_admin_through_api.sql).
select set_eq(
    $$ select * from pg_temp.executable('app_admin') $$,
    array[
        'api.admin_ad_upsert(text,text,text,bigint,boolean)',
        'api.admin_adjust_points(text,uuid,bigint,text,text)',
        'api.admin_audit(text,text,text,timestamp with time zone,timestamp with time zone,integer,bigint)',
        'api.admin_batch_run(text)',
        'api.admin_batches(integer)',
        'api.admin_correct_settlement(date,jsonb,text)',
        'api.admin_dashboard()',
        'api.admin_eod_trigger(date)',
        'api.admin_health()',
        'api.admin_integrity_check()',
        'api.admin_load_eod_prices(jsonb)',
        'api.admin_metrics(date,date)',
        'api.admin_resolve_redemption(bigint,text,text,text)',
        'api.admin_reward_inventory(text,text,bigint,integer,boolean)',
        'api.admin_setting_set(text,text)',
        'api.admin_settings()',
        'api.admin_settings_patch(jsonb)',
        'api.admin_settlement_manual(date,boolean)',
        'api.admin_universe_upsert(date,text[])',
        'api.admin_user_disabled(uuid,boolean,text)',
        'api.ads()',
        'api.click_ad(text,text)',
        'api.leaderboard(text,integer,text)',
        'api.me()',
        'api.my_predictions(date,bigint,integer)',
        'api.my_redemptions(bigint,integer)',
        'api.points_balance()',
        'api.points_ledger(bigint,integer)',
        'api.redeem_reward(text,text)',
        'api.rewards()',
        'api.session_today()',
        'api.set_nickname(text)',
        'api.settlements(date)',
        'api.submit_prediction(text,text,text)',
        'api.universe_today()',
        'api.user_stats()',
        'crypto.auth_uid()',
        'crypto.award_key(date,bigint)',
        'crypto.award_key_prediction(text)',
        'crypto.award_key_prefix(date)',
        'crypto.change_percent(numeric)',
        'crypto.current_session()',
        'crypto.eod_deadline(date)',
        'crypto.error_code(text)',
        'crypto.job_json(crypto.jobs)',
        'crypto.kst(timestamp with time zone)',
        'crypto.leaderboard_start(text,date)',
        'crypto.mask_secret(text)',
        'crypto.new_york(timestamp with time zone)',
        'crypto.next_session_day()',
        'crypto.next_trading_day(date)',
        'crypto.now()',
        'crypto.prediction_award(bigint,date)',
        'crypto.prediction_points(bigint,date)',
        'crypto.prev_trading_day(date)',
        'crypto.problem(text,text)',
        'crypto.redemption_json(crypto.rewards_redemptions)',
        'crypto.redemption_json_masked(crypto.rewards_redemptions)',
        'crypto.reward_json(crypto.rewards_inventory)',
        'crypto.secret_digest(text)',
        'crypto.setting_rule_text(text)',
        'crypto.setting_rules()',
        'crypto.settlement_void_reason(crypto.current_settlements)',
        'crypto.try_date(text)',
        'crypto.try_numeric(text)',
        'crypto.unknown_symbols(text[])',
        'crypto.void_reason(crypto.settlement_outcome,numeric,numeric)'
    ]::text[],
    'app_admin executes exactly its list'
);

-- auditor: reads and the chain check, nothing that writes.
select set_eq(
    $$ select * from pg_temp.executable('auditor') $$,
    array[
        'crypto.alerts_list(boolean)',
        'crypto.audit_search(text,text,text,timestamp with time zone,timestamp with time zone,integer,bigint)',
        'crypto.audit_verify()',
        'crypto.auth_uid()',
        'crypto.award_key(date,bigint)',
        'crypto.award_key_prediction(text)',
        'crypto.award_key_prefix(date)',
        'crypto.change_percent(numeric)',
        'crypto.current_session()',
        'crypto.daily_metrics_range(date,date)',
        'crypto.eod_day(date)',
        'crypto.eod_deadline(date)',
        'crypto.integrity_violations()',
        'crypto.job_json(crypto.jobs)',
        'crypto.jobs_list(text,integer)',
        'crypto.kst(timestamp with time zone)',
        'crypto.leaderboard_start(text,date)',
        'crypto.mask_secret(text)',
        'crypto.new_york(timestamp with time zone)',
        'crypto.next_session_day()',
        'crypto.next_trading_day(date)',
        'crypto.now()',
        'crypto.prediction_award(bigint,date)',
        'crypto.prediction_outcome(crypto.prediction_choice,crypto.settlement_outcome)',
        'crypto.prediction_points(bigint,date)',
        'crypto.prediction_won(crypto.prediction_choice,crypto.settlement_outcome)',
        'crypto.prev_trading_day(date)',
        'crypto.redemption_json(crypto.rewards_redemptions)',
        'crypto.redemption_json_masked(crypto.rewards_redemptions)',
        'crypto.redemptions_list(text,bigint,integer)',
        'crypto.reward_json(crypto.rewards_inventory)',
        'crypto.secret_digest(text)',
        'crypto.sessions_list(date,date,integer)',
        'crypto.setting_rule_text(text)',
        'crypto.setting_rules()',
        'crypto.settings_list()',
        'crypto.settlement_void_reason(crypto.current_settlements)',
        'crypto.unknown_symbols(text[])',
        'crypto.user_detail(text,integer)',
        'crypto.user_ledger(text,bigint,integer)',
        'crypto.users_list(text,integer)',
        'crypto.void_reason(crypto.settlement_outcome,numeric,numeric)'
    ]::text[],
    'auditor executes exactly its list'
);

-- oxp_service: the worker and the pg_cron jobs, nothing an operator decides.
select set_eq(
    $$ select * from pg_temp.executable('oxp_service') $$,
    array[
        'api.environment()',
        'api.error_codes()',
        'crypto.alert_delivered(bigint,text,text)',
        'crypto.alert_delivery(bigint,text)',
        'crypto.audit_seal()',
        'crypto.auth_uid()',
        'crypto.award_key(date,bigint)',
        'crypto.award_key_prediction(text)',
        'crypto.award_key_prefix(date)',
        'crypto.change_percent(numeric)',
        'crypto.check_backup_late()',
        'crypto.check_calendar_runway()',
        'crypto.check_wal_archive()',
        'crypto.claim_job(text[])',
        'crypto.cold_backed_up(jsonb,text)',
        'crypto.cold_months_due()',
        'crypto.cold_step(text)',
        'crypto.complete_job(bigint)',
        'crypto.complete_job(bigint,integer)',
        'crypto.current_session()',
        'crypto.email_verification_issue(uuid,bytea)',
        'crypto.enqueue_archive()',
        'crypto.enqueue_backup(text)',
        'crypto.enqueue_cold_storage()',
        'crypto.eod_deadline(date)',
        'crypto.eod_fetch_needed(date)',
        'crypto.eod_fetch_plan(date)',
        'crypto.error_code(text)',
        'crypto.evaluate_alerts()',
        'crypto.expire_auth_rows()',
        'crypto.fail_job(bigint,integer,text)',
        'crypto.fail_job(bigint,text)',
        'crypto.job_json(crypto.jobs)',
        'crypto.kst(timestamp with time zone)',
        'crypto.leaderboard_start(text,date)',
        'crypto.load_eod_price(date,text,numeric,text,timestamp with time zone)',
        'crypto.log_eod_fetch(date,text,timestamp with time zone,crypto.run_status,integer,text)',
        'crypto.mask_secret(text)',
        'crypto.new_york(timestamp with time zone)',
        'crypto.next_session_day()',
        'crypto.next_trading_day(date)',
        'crypto.now()',
        'crypto.partition_archive_rows(text)',
        'crypto.partition_archived(text,bigint,text,text)',
        'crypto.partition_maintenance()',
        'crypto.partition_maintenance(text)',
        'crypto.partitions_to_archive()',
        'crypto.prediction_award(bigint,date)',
        'crypto.prediction_points(bigint,date)',
        'crypto.prev_trading_day(date)',
        'crypto.problem(text,text)',
        'crypto.rate_limit_cleanup()',
        'crypto.record_backup(text,timestamp with time zone,boolean,jsonb,text)',
        'crypto.redemption_failed(bigint,text)',
        'crypto.redemption_issued(bigint,text)',
        'crypto.redemption_json(crypto.rewards_redemptions)',
        'crypto.redemption_json_masked(crypto.rewards_redemptions)',
        'crypto.redemption_not_sent(bigint,bigint,integer,integer,text)',
        'crypto.redemption_refused(bigint,bigint,integer,integer,text)',
        'crypto.redemption_sending(bigint,bigint,integer,numeric)',
        'crypto.redemption_unknown(bigint,text)',
        'crypto.replica_heartbeat()',
        'crypto.reward_json(crypto.rewards_inventory)',
        'crypto.rollup_metrics()',
        'crypto.run_integrity_check(boolean)',
        'crypto.schedule_tick(text)',
        'crypto.secret_digest(text)',
        'crypto.setting_rule_text(text)',
        'crypto.setting_rules()',
        'crypto.settings_list()',
        'crypto.settlement_void_reason(crypto.current_settlements)',
        'crypto.try_date(text)',
        'crypto.try_numeric(text)',
        'crypto.unknown_symbols(text[])',
        'crypto.void_reason(crypto.settlement_outcome,numeric,numeric)',
        'crypto.worker_heartbeat(text,jsonb)'
    ]::text[],
    'oxp_service executes exactly its list'
);

-- oxp_operator: all the worker may (it is a member of oxp_service), and these.
select set_eq(
    $$ select * from pg_temp.executable('oxp_operator') except select * from pg_temp.executable('oxp_service') $$,
    array[
        'cron.schedule(text,text,text)',
        'cron.unschedule(name)',
        'crypto.adjust_points(text,bigint,text,text)',
        'crypto.adjustment_key(text,bigint,text)',
        'crypto.alerts_list(boolean)',
        'crypto.audit_search(text,text,text,timestamp with time zone,timestamp with time zone,integer,bigint)',
        'crypto.audit_verify()',
        'crypto.begin_settling(date)',
        'crypto.cancel_redemption(bigint,text)',
        'crypto.clock_reset()',
        'crypto.clock_set(timestamp with time zone)',
        'crypto.close_session(date)',
        'crypto.compute_daily_metrics(date)',
        'crypto.correct_settlement(date,jsonb,text)',
        'crypto.daily_metrics_range(date,date)',
        'crypto.demote_admin(text)',
        'crypto.enqueue_job(text,jsonb,text,integer)',
        'crypto.eod_day(date)',
        'crypto.eod_prices_problems(jsonb,boolean)',
        'crypto.finish_settling(date)',
        'crypto.integrity_violations()',
        'crypto.job_cancel(bigint,text)',
        'crypto.job_retry(bigint)',
        'crypto.jobs_list(text,integer)',
        'crypto.leaderboard_refresh(date)',
        'crypto.load_eod_prices(jsonb,text)',
        'crypto.make_admin(text,text,text)',
        'crypto.open_session(date)',
        'crypto.redemptions_list(text,bigint,integer)',
        'crypto.reset_totp(text,text,text)',
        'crypto.resolve_alert(bigint,text)',
        'crypto.resolve_redemption(bigint,text,text,text)',
        'crypto.sessions_list(date,date,integer)',
        'crypto.set_universe(date,text[],boolean)',
        'crypto.set_user_disabled(uuid,boolean,text)',
        'crypto.setting_set(text,text)',
        'crypto.settle_session(date,boolean)',
        'crypto.sync_calendar(jsonb)',
        'crypto.upsert_reward(text,text,bigint,integer,boolean)',
        'crypto.user_detail(text,integer)',
        'crypto.user_ledger(text,bigint,integer)',
        'crypto.users_list(text,integer)',
        'crypto.verify_email_by_operator(text)'
    ]::text[],
    'oxp_operator executes exactly the worker''s list and these'
);

-- ad_network: the ad network's verified callback, nothing else.
select set_eq(
    $$ select * from pg_temp.executable('ad_network') $$,
    array['api.ad_ssv_reward(text,text,text,timestamp with time zone,jsonb)']::text[],
    'ad_network executes exactly the reward of a verified callback'
);

-- The API's logins have no rights of their own, but for the rate limiter's
-- gate (which authenticator reaches as auth_service anyway), so that a
-- request's gate and its switch to the caller are one statement.
select set_eq(
    $$ select * from pg_temp.executable('authenticator') $$,
    array['api.rate_limit_gate(text,uuid,text[],text[])']::text[],
    'authenticator executes only the rate limiter''s gate itself'
);
select is_empty($$ select * from pg_temp.executable('admin_authenticator') $$,
    'admin_authenticator executes nothing itself');

-- Who may become whom: authenticator never becomes app_admin.
select is(
    (select array_agg(r.rolname::text order by r.rolname) from pg_auth_members as m
     join pg_roles as r on r.oid = m.roleid where m.member = 'authenticator'::regrole),
    array['ad_network', 'anon', 'app_user', 'auth_service'],
    'authenticator may become anon, app_user, auth_service and ad_network (the ad callback) only'
);
select is(
    (select array_agg(r.rolname::text order by r.rolname) from pg_auth_members as m
     join pg_roles as r on r.oid = m.roleid where m.member = 'admin_authenticator'::regrole),
    array['app_admin'], 'admin_authenticator may become app_admin only'
);
select is(
    (select array_agg(rolname::text order by rolname) from pg_roles
     where rolname in ('authenticator', 'admin_authenticator') and rolcanlogin and not rolinherit
         and not rolsuper and not rolbypassrls),
    array['admin_authenticator', 'authenticator'], 'both are plain logins that inherit nothing'
);
set local session authorization authenticator;
select throws_ok('set role app_admin', '42501', null, 'authenticator cannot set role app_admin');
select lives_ok('set role auth_service', '... it can become auth_service');
reset role;
reset session authorization;
set local session authorization admin_authenticator;
select throws_ok('set role app_user', '42501', null, 'admin_authenticator cannot become a user');
select throws_ok('set role auth_service', '42501', null, '... nor the sign-in role');
select lives_ok('set role app_admin', '... only app_admin');
reset role;
reset session authorization;

-- SECURITY DEFINER runs as oxp_owner, never as a superuser.
select is(
    (select rolsuper or rolcanlogin from pg_roles where rolname = 'oxp_owner'), false,
    'oxp_owner is not a superuser and cannot log in'
);
select is_empty(
    $$ select p.oid::regprocedure from pg_proc as p join pg_roles as r on r.oid = p.proowner
       where p.prosecdef and r.rolsuper $$,
    'no SECURITY DEFINER function is owned by a superuser'
);
select is_empty(
    $$ select p.oid::regprocedure from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
       where n.nspname in ('api', 'crypto', 'audit') and p.proowner <> 'oxp_owner'::regrole $$,
    'oxp_owner owns every function of api and crypto'
);
select is_empty(
    $$ select c.oid::regclass from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
       where n.nspname in ('api', 'crypto', 'audit') and c.relkind in ('r', 'v', 'S')
           and c.relowner <> 'oxp_owner'::regrole $$,
    '... and every table, view and sequence'
);

-- The worker's role is refused what an operator decides.
select tests.create_user('alice@example.com') as alice \gset
set local role oxp_service;
select throws_ok($$ select crypto.make_admin('alice@example.com', 'JBSWY3DPEHPK3PXP', 'a key of sixteen chars') $$,
    '42501', null, 'oxp_service cannot promote an admin');
select throws_ok($$ select crypto.adjust_points('alice@example.com', 100, 'gift', 'k1') $$,
    '42501', null, 'oxp_service cannot adjust points');
select throws_ok($$ select crypto.clock_set('2026-11-24 09:00:00+09') $$, '42501', null,
    'oxp_service cannot shift the clock');
select throws_ok($$ select crypto.clock_reset() $$, '42501', null, '... nor reset it');
select throws_ok($$ select cron.schedule('oxp-forged', '* * * * *', 'select 1') $$, '42501', null,
    'oxp_service cannot schedule a cron job');
reset role;
set local role oxp_operator;
select is(crypto.clock_set('2026-11-24 09:00:00+09'), '2026-11-24 09:00:00+09'::timestamptz, 'the operator shifts the clock');
select is((crypto.adjust_points('alice@example.com', 100, 'gift', 'k1') ->> 'balance_after')::bigint, 100::bigint,
    '... adjusts points');
select isnt(cron.schedule('oxp-operator-test', '0 0 1 1 *', 'select 1'), null, '... and schedules a cron job');
reset role;

-- The audit believes request.jwt.claims only from the API's logins: any
-- other session records the login it really is.
set local session authorization oxp_operator;
select set_config('request.jwt.claims', json_build_object('sub', :'alice', 'role', 'app_admin')::text, true);
select crypto.clock_set('2026-11-24 10:00:00+09');
select is((select actor from crypto.audit_logs where action = 'clock.set' order by id desc limit 1), 'role:oxp_operator',
    'claims set by another login are not believed: its real role is recorded');
reset session authorization;
select crypto.clock_set('2026-11-24 11:00:00+09');
select is((select actor from crypto.audit_logs where action = 'clock.set' order by id desc limit 1), 'role:postgres',
    '... the same for a superuser');
-- (The actor as a definer function sees it: the session stays the login.)
create function pg_temp.actor() returns text
language sql security definer
as $$ select crypto.current_actor() $$;
grant execute on function pg_temp.actor() to public;
set local session authorization authenticator;
select is(pg_temp.actor(), 'user:' || :'alice', 'through the API''s login, the signed-in user');
reset session authorization;
set local session authorization oxp_service;
select is(pg_temp.actor(), 'role:oxp_service', '... through the worker''s, the worker');
reset session authorization;
select set_config('request.jwt.claims', '', true);

-- The admin API's login without an admin's token moves no points.
set local role app_admin;
select throws_ok($$ select crypto.adjust_points('x@example.com', 1000, 'mint', 'k-mint') $$, '42501', null,
    'app_admin cannot adjust points directly, only through api.admin_adjust_points');
select throws_ok($$ select crypto.setting_set('points.per_win', '1000000') $$, '42501', null,
    '... nor change a setting');
select throws_ok($$ select api.admin_adjust_points('x@example.com', null, 1000, 'mint', 'k') $$, 'OX001', null,
    '... and the api function wants a signed-in admin');
reset role;

select * from finish();
rollback;
