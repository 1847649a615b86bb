-- A transfer key remembers a refusal as well as a success (TigerBeetle's
-- rule): a refused transfer is stored with its SQLSTATE and no entries, so
-- a retry with the same key gets the same refusal and moves nothing.
alter table crypto.ledger_transfers
add column refusal text check (refusal ~ '^OX[0-9]{3}$');

-- ledger_transfer now returns the stored transfer, refusal included.
drop function if exists crypto.ledger_transfer(text, bigint, bigint, bigint, text, text);

create index rewards_redemptions_by_user on crypto.rewards_redemptions (user_id, id);
create index ad_unlocks_by_user_day on crypto.ad_unlocks (user_id, trading_day);
create index audit_logs_by_subject on crypto.audit_logs (action, subject);

-- The reward catalogue and the ads are public, as the API lists them.
create policy "Rewards are public" on crypto.rewards_inventory
for select to app_user using (true);
grant select on crypto.rewards_inventory to app_user;
create policy "Ads are public" on crypto.ads
for select to app_user using (true);
grant select on crypto.ads to app_user;
