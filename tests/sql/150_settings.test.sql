begin;
select plan(26);

-- Valid values are stored as JSON and audited with the old value.
select is(crypto.setting_set('points.per_win', ' 150 ') ->> 'value', '150', 'a whole number within its rule is set');
select is(crypto.setting_int('points.per_win'), 150::bigint, '... and the game reads it');
select results_eq(
    $$ select subject, details from crypto.audit_logs where action = 'setting.set' $$,
    $$ values ('points.per_win', '{"previous": 100, "value": 150}'::jsonb) $$,
    'the change is audited with the old and new value'
);
select is(crypto.setting_set('points.per_win', '150') ->> 'changed', 'false', 'the same value again changes nothing');
select is((select count(*)::int from crypto.audit_logs where action = 'setting.set'), 1, '... and audits nothing');
select is(crypto.setting_set('settlement.threshold', '0.0002') -> 'value', '0.0002'::jsonb, 'a threshold of 0.02 %');
select is(crypto.setting_set('universe.default', 'aapl, MSFT BRK.B') -> 'value', '["AAPL", "MSFT", "BRK.B"]'::jsonb,
    'symbols, comma- or space-separated, upper-cased');

-- Refusals, each naming the rule; none changes anything.
select throws_ok($$ select crypto.setting_set('no.such', '1') $$, 'OX120', 'UNKNOWN_SETTING', 'an unknown key');
select throws_ok($$ select crypto.setting_set('environment', 'production') $$, 'OX121', 'SETTING_READ_ONLY',
    'the environment is not set here');
select throws_ok($$ select crypto.setting_set('clock.offset_seconds', '10') $$, 'OX121', 'SETTING_READ_ONLY',
    'the clock has its own command');
select throws_ok($$ select crypto.setting_set('predictions.base_limit', '0') $$, 'OX000',
    'VALIDATION_FAILED', 'a limit below 1');
select throws_ok($$ select crypto.setting_set('points.per_win', 'ten') $$, 'OX000', 'VALIDATION_FAILED',
    'not a number');
select throws_ok($$ select crypto.setting_set('points.per_win', '1.5') $$, 'OX000', 'VALIDATION_FAILED',
    'not a whole number');
select throws_ok($$ select crypto.setting_set('settlement.threshold', '0') $$, 'OX000', 'VALIDATION_FAILED',
    'a threshold of 0 (an unchanged close would win for UP)');
select throws_ok($$ select crypto.setting_set('settlement.threshold', '0.02') $$, 'OX000', 'VALIDATION_FAILED',
    'a threshold above 1 %');
select throws_ok($$ select crypto.setting_set('universe.default', 'AAPL, aapl') $$, 'OX000', 'VALIDATION_FAILED',
    'a symbol twice');
select is(
    (select jsonb_object_agg(key, value) from crypto.settings
     where key in ('points.per_win', 'predictions.base_limit', 'settlement.threshold', 'environment')),
    '{"points.per_win": 150, "predictions.base_limit": 3, "settlement.threshold": 0.0002, "environment": "development"}'::jsonb,
    'refused values changed nothing'
);

-- Who may change settings: the operator and admins, not players, anon or the auditor.
select is_empty(
    $$ select r from unnest(array['anon', 'app_user', 'auditor', 'authenticator']) as r
       where has_function_privilege(r, 'crypto.setting_set(text, text)', 'execute') $$,
    'players, anon and the auditor cannot change a setting'
);

select throws_ok($$ select crypto.setting_set('universe.default', 'AAPL,ZZZZQ') $$, 'OX130', 'UNKNOWN_SYMBOL',
    'the default universe refuses an unknown ticker, as a day''s universe does');
select is_empty(
    $$ select s.key from crypto.settings as s
       where s.key not in (select r.key from crypto.setting_rules() as r) and s.key <> 'auth.totp_key_fingerprint' $$,
    'every setting has a rule (the key fingerprint is the database''s own)'
);

-- Durations: the unit is the key's, read in one place.
select is(crypto.setting_interval('auth.oauth_state_minutes'),
    crypto.setting_int('auth.oauth_state_minutes') * interval '1 minute', 'a _minutes setting is minutes');
select is(crypto.setting_interval('auth.refresh_ttl_days'),
    crypto.setting_int('auth.refresh_ttl_days') * interval '1 day', 'a _days setting is days');
select is(crypto.setting_interval('ads.ssv_max_age_seconds'),
    crypto.setting_int('ads.ssv_max_age_seconds') * interval '1 second', 'a _seconds setting is seconds');
select throws_ok($$ select crypto.setting_interval('points.per_win') $$, 'OX230', 'SETTING_NOT_A_DURATION',
    'a setting that is no duration is refused, not read as one');
select throws_ok($$ select crypto.setting('no.such_setting') $$, 'OX231', 'SETTING_MISSING',
    'a setting the code reads but nobody seeded is a 500 of its own');
select is((select remembered_by_idempotency_key from crypto.error_codes where sqlstate = 'OX231'), false,
    '... which no Idempotency-Key remembers: a retry after the fix goes through');

select * from finish();
rollback;
