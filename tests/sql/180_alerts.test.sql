-- Alerts (issue 11, item 4): one row per condition while it lasts, each
-- transition queued once for the webhooks, rules that open and clear.
begin;
select plan(32);

select tests.load_calendar();
select crypto.clock_set('2026-11-24 01:00Z');

-- A check that writes crypto.system_health opens an alert; seen again, the same one.
insert into crypto.system_health (at, check_name, status, details)
values (crypto.now(), 'calendar_runway', 'alert', '{"days_left": 10}');
select is((select count(*)::int from crypto.alerts where rule = 'calendar_runway' and resolved_at is null), 1,
    'an alert row of a check opens an alert');
select crypto.clock_set('2026-11-24 01:05Z');
insert into crypto.system_health (at, check_name, status, details)
values (crypto.now(), 'calendar_runway', 'alert', '{"days_left": 9}');
select results_eq(
    $$ select count(*)::int, max(last_seen) - min(first_seen), max(details ->> 'days_left')
       from crypto.alerts where rule = 'calendar_runway' $$,
    $$ values (1, interval '5 minutes', '9') $$,
    'seen again: the same alert, last seen later, with the newest details'
);
select is(
    (select array_agg(dedupe_key order by id) from crypto.jobs
     where kind = 'alert.deliver' and (payload ->> 'alert_id')::bigint in (select id from crypto.alerts where rule = 'calendar_runway')),
    array[format('alert:%s:opened', (select id from crypto.alerts where rule = 'calendar_runway'))],
    'one delivery job for the opening, none for seeing it again'
);
insert into crypto.system_health (at, check_name, status, details)
values (crypto.now(), 'calendar_runway', 'ok', '{}');
select results_eq(
    $$ select resolution, resolved_by from crypto.alerts where rule = 'calendar_runway' $$,
    $$ values ('cleared', 'rule') $$,
    'an ok row clears it'
);
select is((select count(*)::int from crypto.jobs where kind = 'alert.deliver'
    and (payload ->> 'alert_id')::bigint in (select id from crypto.alerts where rule = 'calendar_runway')), 2,
    '... and queues the resolution');

-- Severity only rises, and rising is a transition of its own.
select crypto.alert_open('test_rule', 'x', 'warning', '{}');
select crypto.alert_open('test_rule', 'x', 'critical', '{}');
select crypto.alert_open('test_rule', 'x', 'warning', '{}');
select results_eq(
    $$ select severity::text from crypto.alerts where rule = 'test_rule' $$,
    $$ values ('critical') $$,
    'an escalated alert stays critical'
);
select results_eq(
    $$ select payload ->> 'transition' from crypto.jobs
       where kind = 'alert.deliver' and (payload ->> 'alert_id')::bigint = (select id from crypto.alerts where rule = 'test_rule')
       order by id $$,
    $$ values ('opened'), ('escalated') $$,
    'opened, then escalated, each once'
);

-- The state rules.
select crypto.enqueue_job('eod.fetch', '{"trading_day": "2026-11-23"}', 'dead-one', 1) as dead \gset
update crypto.jobs set status = 'dead', attempts = 1, last_error = 'boom' where id = :dead;
select crypto.enqueue_job('reward.issue', '{}', 'waiting-one') as waiting \gset
select crypto.worker_heartbeat('w1', '{}');
select crypto.clock_set('2026-11-24 01:11Z');
select crypto.evaluate_alerts();
select results_eq(
    $$ select rule, subject, severity::text from crypto.alerts
       where resolved_at is null and rule in ('job_dead', 'queue_stale', 'worker_silent') order by rule $$,
    format($$ values ('job_dead', %L, 'warning'), ('queue_stale', '', 'warning'), ('worker_silent', '', 'critical') $$, :dead),
    'a dead job, a job due for 6 minutes, and a worker silent for 6 minutes each open an alert'
);
select is((select details ->> 'action' from crypto.alerts where rule = 'job_dead'), format('oxp jobs retry %s (or cancel)', :dead),
    'the alert says what to do');
-- (the worker would also have delivered the alerts' own jobs by now)
update crypto.jobs set status = 'done', finished_at = crypto.now() where id = :dead or status = 'queued';
select crypto.worker_heartbeat('w1', '{}');
select crypto.evaluate_alerts();
select is(
    (select count(*)::int from crypto.alerts where resolved_at is null and rule in ('job_dead', 'queue_stale', 'worker_silent')),
    0, 'once the job is done and the worker beats, all three clear'
);
select is((select count(*)::int from crypto.alerts where rule = 'worker_silent'), 1, '... the same alert, not a new one');

-- A person resolves, with a reason, audited; once.
select (crypto.alert_open('test_rule', 'y', 'warning', '{}')).id is not null;
select throws_ok(
    format($$ select crypto.resolve_alert(%s, ' ') $$, (select id from crypto.alerts where rule = 'test_rule' and subject = 'y')),
    'OX000', 'VALIDATION_FAILED', 'a resolution needs a reason'
);
select is(
    crypto.resolve_alert((select id from crypto.alerts where rule = 'test_rule' and subject = 'y'), 'known: a test') ->> 'resolution',
    'known: a test', 'a person resolves an alert'
);
select ok(exists (select from crypto.audit_logs where action = 'alert.resolved'), '... audited');
select throws_ok(
    format($$ select crypto.resolve_alert(%s, 'again') $$, (select id from crypto.alerts where rule = 'test_rule' and subject = 'y')),
    'OX131', 'ALERT_RESOLVED', 'not twice'
);
select throws_ok($$ select crypto.resolve_alert(999999, 'none') $$, 'OX004', 'NOT_FOUND', 'an unknown alert');

-- What the worker reads and records for a delivery.
select crypto.alert_delivered((select id from crypto.alerts where rule = 'test_rule' and subject = 'x'), 'opened', repeat('a', 64));
select crypto.alert_delivered((select id from crypto.alerts where rule = 'test_rule' and subject = 'x'), 'opened', repeat('a', 64));
select is(
    crypto.alert_delivery((select id from crypto.alerts where rule = 'test_rule' and subject = 'x'), 'opened') -> 'delivered',
    jsonb_build_array(repeat('a', 64)), 'a webhook that has a transition is recorded once'
);
select throws_ok($$ select crypto.alert_delivered(1, 'opened', 'https://hooks.example/secret') $$, '23514', null,
    'only a hash of a webhook URL is stored');

-- A settlement's payout against its winners.
select tests.open_session('2026-11-24');
select tests.create_user('w@example.com') as w \gset
select tests.authenticate_as(:'w');
select api.submit_prediction('AAPL', 'UP');
select tests.clear_authentication();
select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');
select crypto.load_eod_price(d::date, 'AAPL', c, 'test') from (values ('2026-11-23', 10), ('2026-11-24', 11)) as v (d, c);
select crypto.settle_session('2026-11-24', true);
select crypto.rollup_metrics();
select is(crypto.check_settlement_payout('2026-11-24'), 0::bigint, 'the check runs on the settled day: nothing amiss');
select is((select count(*)::int from crypto.alerts where rule = 'settlement_payout'), 0, 'a settlement that paid its winners: no alert');
update crypto.session_control set points_per_win = 150 where trading_day = '2026-11-24';
select is(crypto.check_settlement_payout('2026-11-24'), -50::bigint, 'paid 100 where 150 was due');
select results_eq(
    $$ select severity::text, details ->> 'paid', details ->> 'expected' from crypto.alerts where rule = 'settlement_payout' $$,
    $$ values ('critical', '100', '150') $$,
    'any difference is a critical alert'
);

-- Participation at the cutoff: under half the median of the 7 days before.
insert into crypto.daily_metrics (trading_day, computed_at, active_users, participants, predictions, wins, losses, voids,
    unsettled, points_settlement, points_ads, points_adjustments, points_redeemed, points_refunded, points_outstanding,
    redemptions, ad_clicks, ad_rewards)
select d, now(), 10, 10, 10, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, '{}', '{}', '{}'
from unnest(array['2026-03-05', '2026-03-06', '2026-03-09', '2026-03-10', '2026-11-23']::date[]) as d;
update crypto.daily_metrics set participants = 10, predictions = 10, wins = 0, losses = 0, voids = 0, unsettled = 10
where trading_day = '2026-11-24';
select crypto.check_participation();
select is((select count(*)::int from crypto.alerts where rule = 'participation_low'), 0,
    'fewer than 7 days before it: no verdict');
insert into crypto.daily_metrics (trading_day, computed_at, active_users, participants, predictions, wins, losses, voids,
    unsettled, points_settlement, points_ads, points_adjustments, points_redeemed, points_refunded, points_outstanding,
    redemptions, ad_clicks, ad_rewards)
values ('2026-11-25', now(), 10, 10, 10, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, '{}', '{}', '{}');
select crypto.clock_set('2026-11-27 13:00Z');
select crypto.open_session('2026-11-27');
select crypto.clock_set('2026-11-27 14:30Z');
select crypto.close_session('2026-11-27');
select crypto.check_participation();
select is((select count(*)::int from crypto.alerts where rule = 'participation_low'), 0,
    'no verdict before the rollup has counted the closed day');
select crypto.rollup_metrics();
select crypto.check_participation();
select results_eq(
    $$ select subject, (details ->> 'participants')::int, (details ->> 'median_of_last_7')::numeric
       from crypto.alerts where rule = 'participation_low' and resolved_at is null $$,
    $$ values ('2026-11-27', 0, 10::numeric) $$,
    'nobody predicted where 10 usually do'
);

-- The API's 5xx rate over 5 minutes, once there is traffic enough to tell.
select crypto.clock_set('2026-11-28 01:00Z');
select api.note_http_counts(50, 40);
select crypto.evaluate_alerts();
select is((select count(*)::int from crypto.alerts where rule = 'api_server_errors'), 0, 'too few requests to judge');
select api.note_http_counts(150, 0);
select crypto.clock_set('2026-11-28 01:02Z');
select api.note_http_counts(100, 3);
select crypto.evaluate_alerts();
select results_eq(
    $$ select (details ->> 'requests')::int, (details ->> 'errors')::int from crypto.alerts
       where rule = 'api_server_errors' and resolved_at is null $$,
    $$ values (300, 43) $$,
    'over 1 % of 300 answers in 5 minutes were 5xx'
);
select crypto.clock_set('2026-11-28 01:08Z');
select crypto.evaluate_alerts();
select is((select resolution from crypto.alerts where rule = 'api_server_errors'), 'cleared', 'a quiet 5 minutes clears it');

-- Who may not.
set local role app_user;
select throws_ok($$ select crypto.alerts_list() $$, '42501', null, 'a player reads no alerts');
select throws_ok($$ select crypto.evaluate_alerts() $$, '42501', null, '... and evaluates none');
reset role;
set local role auditor;
select ok(jsonb_array_length(crypto.alerts_list(true)) > 0, 'the auditor lists alerts');
select throws_ok($$ select crypto.resolve_alert(1, 'auditor') $$, '42501', null, '... but resolves none');
reset role;

select * from finish();
rollback;
