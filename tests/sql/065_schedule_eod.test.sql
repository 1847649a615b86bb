begin;
select plan(13);

select tests.load_calendar();
select crypto.clock_set('2026-11-24 09:00:00+09');
select crypto.schedule_tick();
select tests.create_user('t@example.com') as uid \gset
select tests.authenticate_as(:'uid');
select api.submit_prediction('AAPL', 'UP');
select tests.clear_authentication();

-- Tuesday's close is 06:00 KST Wednesday: prices are not final before it.
select crypto.clock_set('2026-11-25 05:59:00+09');
select is((crypto.eod_fetch_plan('2026-11-24') ->> 'final')::boolean, false, 'not final before the close');
select is(
    jsonb_array_length(crypto.eod_fetch_plan('2026-11-24') -> 'missing'), 20,
    'a fetch must bring ten closes for the day and ten for the previous trading day'
);
select crypto.schedule_tick();
select is(
    (select count(*)::int from crypto.jobs where kind = 'eod.fetch'), 0, 'no fetch is asked before the close'
);

select crypto.clock_set('2026-11-25 06:15:00+09');
select crypto.schedule_tick();
select results_eq(
    $$ select kind, payload ->> 'trading_day', status::text from crypto.jobs where kind <> 'alert.deliver' $$,
    $$ values ('eod.fetch', '2026-11-24', 'queued') $$,
    '15 minutes after the close the tick asks the worker for the closes'
);
select is(
    (select phase::text from crypto.session_control where trading_day = '2026-11-24'), 'SETTLING',
    'and the session is SETTLING'
);
select crypto.schedule_tick();
select is((select count(*)::int from crypto.jobs where kind = 'eod.fetch'), 1, 'a second tick asks nothing more');

-- A price outage never VOIDs a day by itself.
select crypto.load_eod_price('2026-11-23', 'AAPL', 100, 'test');
select crypto.load_eod_price('2026-11-24', 'AAPL', 101, 'test');
update crypto.jobs set status = 'running', attempts = 1, locked_at = clock_timestamp(), claimed_pid = pg_backend_pid()
    where kind = 'eod.fetch';
select crypto.fail_job(id, attempts, 'YFRateLimitError: Too Many Requests') from crypto.jobs where kind = 'eod.fetch';
select is(
    (select details ->> 'deadline' from crypto.system_health where check_name = 'eod_fetch' and status = 'alert'),
    '2026-11-25T21:25:00+09:00', 'the first failed fetch raises an alert naming the deadline'
);
update crypto.jobs set status = 'running', attempts = 9, locked_at = clock_timestamp(), claimed_pid = pg_backend_pid()
    where kind = 'eod.fetch';
select crypto.fail_job(id, attempts, 'still down') from crypto.jobs where kind = 'eod.fetch';
select is(
    (select run_after - crypto.now() from crypto.jobs where kind = 'eod.fetch'), interval '15 minutes',
    'retries are never more than 15 minutes apart'
);
update crypto.jobs set status = 'dead', attempts = max_attempts, last_error = 'rate limited' where kind = 'eod.fetch';
select crypto.clock_set('2026-11-25 21:24:00+09');
select crypto.schedule_tick();
select is(
    (select phase::text from crypto.session_control where trading_day = '2026-11-24'), 'SETTLING',
    'before the deadline (2 hours before the next cutoff) nothing is VOID, even with the fetch dead'
);
select crypto.clock_set('2026-11-25 21:25:00+09');
select is(crypto.schedule_tick() -> 'done' -> 0, '{"settled_void_missing": "2026-11-24"}',
    'at the deadline the day settles with what it has');
select results_eq(
    $$ select outcome::text, count(*)::int from crypto.settlements group by 1 order by 1 $$,
    $$ values ('UP', 1), ('VOID', 9) $$,
    'symbols with both closes are decided, the rest are VOID'
);
select is(
    (select jsonb_array_length(details -> 'missing') from crypto.system_health
     where check_name = 'eod_void' and status = 'alert'),
    18, 'and an alert names every missing close'
);
select is((select balance from crypto.ledger_accounts where user_id = :'uid'), 100::bigint, 'the winner is paid');

select * from finish();
rollback;
