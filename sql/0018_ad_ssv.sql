-- Ad rewards only on the ad network's server-side verification (SSV).
-- A click no longer pays: it records an impression, whose id the app hands
-- to the ad SDK (as custom_data, with the user's id as user_id). The network
-- calls back, signed, when the view is complete; the API checks the
-- signature and api.ad_ssv_reward pays, once per transaction id and once
-- per impression.

create table crypto.ad_impressions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references crypto.users,
    ad_id text not null references crypto.ads,
    -- The session the reward counts towards: the one taking predictions
    -- when the ad was shown, whenever the network's callback arrives.
    trading_day date not null references crypto.trading_calendar,
    idempotency_key text not null,
    created_at timestamptz not null,
    unique (user_id, idempotency_key)
);
create index ad_impressions_by_user_day on crypto.ad_impressions (user_id, trading_day);

alter table crypto.ad_impressions enable row level security;
create policy "Ad impressions are visible to their owner" on crypto.ad_impressions
for select to app_user using ((select crypto.auth_uid()) = user_id);
grant select on crypto.ad_impressions to app_user;
grant select on crypto.ad_impressions to auditor, oxp_service;

-- An unlock is now the network's verified callback: the transaction pays
-- once (unique), the impression is rewarded once (unique). `callback` keeps
-- what the network said (ad network, ad unit, key, its reward, its time);
-- the amount paid is the catalogue's, never the callback's.
alter table crypto.ad_unlocks
add column impression_id uuid unique references crypto.ad_impressions,
add column transaction_id text unique check (transaction_id ~ '^[A-Za-z0-9_\-]{1,128}$'),
add column callback jsonb;

-- Unlocks paid on a click before this release have neither; every new one
-- must have both (NOT VALID: the old rows are not checked).
alter table crypto.ad_unlocks
add constraint ad_unlocks_verified
check (impression_id is not null and transaction_id is not null) not valid;

-- The role the API switches to for the network's callback: it may call
-- api.ad_ssv_reward and nothing else.
do $roles$
begin
    if not exists (select from pg_roles where rolname = 'ad_network') then
        create role ad_network nologin;
    end if;
end
$roles$;

grant ad_network to authenticator;
grant usage on schema api to ad_network;
alter role ad_network set statement_timeout = '5s';
