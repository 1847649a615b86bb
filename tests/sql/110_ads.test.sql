begin;
select plan(36);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('ad@example.com') as u \gset
select tests.create_user('other@example.com') as o \gset
insert into crypto.ads (id, title, reward_kind, reward_points) values
('slot', 'One more prediction', 'SLOT', 0), ('pts', '20 points', 'POINTS', 20), ('gone', 'Old', 'POINTS', 5);
update crypto.ads set active = false where id = 'gone';
update crypto.settings set value = '2' where key = 'ads.max_slot_unlocks';

-- The network's verified callback, as the API passes it on: as ad_network.
-- (A rolled-back call also rolls back the role change.)
create function pg_temp.ssv(p_tx text, p_impression text, p_user text, p_at timestamptz default null)
returns json
language plpgsql
as $$
declare
    v_at timestamptz := coalesce(p_at, crypto.now());
    v_result json;
begin
    perform set_config('role', 'ad_network', true);
    v_result := api.ad_ssv_reward(p_tx, p_impression, p_user, v_at, '{"ad_unit": "test"}');
    perform set_config('role', 'none', true);
    return v_result;
end
$$;

create function pg_temp.as_network(p_sql text) returns void
language plpgsql
as $$
begin
    perform set_config('role', 'ad_network', true);
    execute p_sql;
end
$$;

create function pg_temp.balance(p_user uuid) returns bigint
language sql
as $$ select balance from crypto.ledger_accounts where user_id = p_user $$;

grant execute on function pg_temp.ssv(text, text, text, timestamptz), pg_temp.as_network(text),
pg_temp.balance(uuid) to public;

select tests.authenticate_as(:'u');
select is((select json_array_length(api.ads() -> 'items')), 2, 'only active ads are listed');

-- A click records an impression and pays nothing.
select api.click_ad('pts', 'p1')::jsonb as p1 \gset
select is(:'p1'::jsonb #>> '{ssv,user_id}', :'u', 'the click answers the user id for the SDK');
select is(:'p1'::jsonb #>> '{ssv,custom_data}', :'p1'::jsonb ->> 'impression_id', '... and the impression as custom_data');
select is(api.click_ad('pts', 'p1')::jsonb, :'p1'::jsonb, 'the same key returns the same impression');
select is(pg_temp.balance(:'u'), 0::bigint, 'a click alone pays nothing');
select api.click_ad('slot', 's1')::jsonb as s1 \gset
select is(
    (select slot_unlocks from crypto.user_daily_limits where user_id = :'u'), 0, 'a click alone unlocks no slot'
);
select is(api.click_ad('gone', 'g1')::jsonb #>> '{problem,sqlstate}', 'OX004', 'an inactive ad: NOT_FOUND');
select throws_ok($$ select api.click_ad('pts', null) $$, 'OX000', 'VALIDATION_FAILED', 'a click needs an Idempotency-Key');
select throws_ok(
    format($$ select api.ad_ssv_reward('tx', %L, %L, now(), '{}') $$, :'p1'::jsonb ->> 'impression_id', :'u'),
    '42501', null, 'a player cannot call the payment'
);
select tests.clear_authentication();

-- The callback pays, once.
select pg_temp.ssv('tx1', :'p1'::jsonb ->> 'impression_id', :'u') ::jsonb as paid \gset
select is(:'paid'::jsonb ->> 'points', '20', 'a verified callback pays the catalogue''s points');
select is(pg_temp.balance(:'u'), 20::bigint, '... through the ledger');
select is(pg_temp.ssv('tx1', :'p1'::jsonb ->> 'impression_id', :'u')::jsonb, :'paid'::jsonb,
    'a replay answers the same');
select is(pg_temp.balance(:'u'), 20::bigint, '... and pays nothing more');
select is(
    (select count(*)::int from crypto.ad_unlocks where transaction_id = 'tx1'), 1, 'one unlock per transaction'
);
select is(
    (select callback ->> 'ad_unit' from crypto.ad_unlocks where transaction_id = 'tx1'), 'test',
    'what the network said is kept'
);
select throws_ok(
    format($$ select pg_temp.ssv('tx2', %L, %L) $$, :'p1'::jsonb ->> 'impression_id', :'u'),
    'OX166', 'AD_IMPRESSION_REWARDED', 'another transaction for a rewarded impression pays nothing'
);

-- Refusals: nothing written, nothing paid.
select throws_ok(
    format($$ select pg_temp.ssv('tx3', %L, %L) $$, gen_random_uuid(), :'u'),
    'OX164', 'AD_IMPRESSION_UNKNOWN', 'an unknown impression'
);
select throws_ok(
    format($$ select pg_temp.ssv('tx3', 'not-a-uuid', %L) $$, :'u'),
    'OX164', 'AD_IMPRESSION_UNKNOWN', 'custom_data that is no impression id'
);
select throws_ok(
    format($$ select pg_temp.ssv('tx3', %L, %L) $$, :'s1'::jsonb ->> 'impression_id', :'o'),
    'OX165', 'AD_SSV_USER_MISMATCH', 'a callback naming another user'
);
select throws_ok(
    format($$ select pg_temp.ssv('tx3', %L, %L, crypto.now() - interval '2 days') $$,
        :'s1'::jsonb ->> 'impression_id', :'u'),
    'OX163', 'AD_SSV_STALE', 'a callback older than ads.ssv_max_age_seconds'
);
select throws_ok(
    format($$ select pg_temp.ssv('tx3', %L, %L, crypto.now() + interval '1 hour') $$,
        :'s1'::jsonb ->> 'impression_id', :'u'),
    'OX163', 'AD_SSV_STALE', 'a callback from the future'
);
select throws_ok(
    format($$ select pg_temp.ssv('tx 3; --', %L, %L) $$, :'s1'::jsonb ->> 'impression_id', :'u'),
    'OX162', 'AD_SSV_MALFORMED', 'a transaction id that is not an id'
);
update crypto.users set disabled_at = now() where id = :'u';
select throws_ok(
    format($$ select pg_temp.ssv('tx3', %L, %L) $$, :'s1'::jsonb ->> 'impression_id', :'u'),
    'OX003', 'FORBIDDEN', 'a disabled account earns nothing'
);
update crypto.users set disabled_at = null where id = :'u';
select is(pg_temp.balance(:'u'), 20::bigint, 'no refusal paid anything');
select is((select count(*)::int from crypto.ad_unlocks), 1, '... or recorded an unlock');

-- A SLOT ad unlocks on its callback too, within the cap.
select pg_temp.ssv('tx-s1', :'s1'::jsonb ->> 'impression_id', :'u');
select is(
    crypto.prediction_limit((select slot_unlocks from crypto.user_daily_limits where user_id = :'u'))::int, 4,
    'a verified SLOT ad raises the session''s limit by one'
);
select tests.authenticate_as(:'u');
select api.click_ad('slot', 's' || i) from generate_series(2, 3) as i;
select tests.clear_authentication();
select pg_temp.ssv('tx-s2', (select id::text from crypto.ad_impressions where idempotency_key = 's2'), :'u');
select throws_ok(
    format($$ select pg_temp.ssv('tx-s3', %L, %L) $$,
        (select id::text from crypto.ad_impressions where idempotency_key = 's3'), :'u'),
    'OX204', 'AD_LIMIT_REACHED', 'past the slot cap at payment time: AD_LIMIT_REACHED'
);
select is(
    (select slot_unlocks from crypto.user_daily_limits where user_id = :'u'), 2, 'the slot cap holds'
);
select tests.authenticate_as(:'u');
select is(api.click_ad('slot', 's4')::jsonb #>> '{problem,sqlstate}', 'OX204',
    'a full slot cap refuses the click up front');

-- Five point rewards a session, counted when paid: impressions made
-- before the cap was reached cannot all pay.
select api.click_ad('pts', 'p' || i) from generate_series(2, 6) as i;
select tests.clear_authentication();
select pg_temp.ssv('tx-p' || i, (select id::text from crypto.ad_impressions where idempotency_key = 'p' || i), :'u')
from generate_series(2, 5) as i;
select is(pg_temp.balance(:'u'), 100::bigint, 'five point rewards paid');
select throws_ok(
    format($$ select pg_temp.ssv('tx-p6', %L, %L) $$,
        (select id::text from crypto.ad_impressions where idempotency_key = 'p6'), :'u'),
    'OX204', 'AD_LIMIT_REACHED', 'the sixth is refused at payment time'
);
select is(pg_temp.balance(:'u'), 100::bigint, '... and pays nothing');

-- The callback's role can do nothing else.
select throws_ok($$ select pg_temp.as_network('select api.click_ad(''pts'', ''x'')') $$, '42501', null,
    'ad_network cannot record impressions');
select throws_ok($$ select pg_temp.as_network('select count(*) from crypto.ad_unlocks') $$, '42501', null,
    'ad_network reads no table');
select throws_ok(
    $$ select pg_temp.as_network('select crypto.ledger_transfer(''x'', 1, 2, 100, ''x'')') $$, '42501', null,
    'ad_network cannot move points by itself'
);

select tests.clear_authentication();
select crypto.clock_set('2026-11-24 23:25:00+09');
select tests.authenticate_as(:'u');
select is(api.click_ad('slot', 'late')::jsonb #>> '{problem,sqlstate}', 'OX101',
    'after the cutoff there is no session to show a slot ad for');

select * from finish();
rollback;
