-- (Named views_audit.sql so that it is applied after the functions it uses.)
-- Views for the auditor, in the `audit` schema (only `auditor` may use it).
-- Each answers one question an auditor asks, in names rather than ids.
-- Times are timestamptz: the auditor's login shows them in KST.

create or replace view audit.account_balances as
with entries as (
    select
        x.account_id,
        sum(x.amount) as total,
        count(*) as entries,
        max(x.created_at) as last_entry_at
    from crypto.ledger_entries as x
    group by x.account_id
)

select
    a.id as account_id,
    a.kind,
    coalesce(a.code, u.email) as name,
    a.user_id,
    case when a.kind = 'user' then a.balance end as stored_balance,
    coalesce(e.total, 0) as balance_from_entries,
    case when a.kind = 'user' then a.balance = coalesce(e.total, 0) end as stored_matches_entries,
    coalesce(e.entries, 0) as entries,
    e.last_entry_at
from crypto.ledger_accounts as a
left join crypto.users as u on a.user_id = u.id
left join entries as e on a.id = e.account_id;

comment on view audit.account_balances is
'Every points account, system accounts by name (issuance, ads, redemptions, adjustments) and users by email, '
'with users who have no entries yet. balance_from_entries is the sum of the account''s entries: negative for a '
'system account that paid out (issuance pays awards), and for a user equal to stored_balance '
'(stored_matches_entries). All accounts together sum to zero.';

create or replace view audit.user_points_history as
select
    u.id as user_id,
    u.email,
    e.id as entry_id,
    e.created_at as at,
    e.amount,
    e.balance_after,
    t.id as transfer_id,
    t.reason,
    t.idempotency_key as cause,
    t.memo,
    o.code as counterparty,
    p.trading_day as prediction_day,
    p.symbol as prediction_symbol,
    p.id as prediction_id,
    ad.ad_id,
    r.id as redemption_id,
    r.sku as reward_sku
from crypto.ledger_entries as e
inner join crypto.ledger_accounts as a on e.account_id = a.id and a.kind = 'user'
inner join crypto.users as u on a.user_id = u.id
inner join crypto.ledger_transfers as t on e.transfer_id = t.id and e.created_at = t.created_at
inner join crypto.ledger_accounts as o
    on case when a.id = t.debit_account_id then t.credit_account_id else t.debit_account_id end = o.id
left join crypto.correction_transfers as ct on t.id = ct.transfer_id
left join crypto.predictions as p
    on p.id = coalesce(ct.prediction_id, crypto.award_key_prediction(t.idempotency_key))
left join crypto.ad_unlocks as ad on t.id = ad.transfer_id
left join crypto.rewards_redemptions as r on t.id in (r.debit_transfer_id, r.refund_transfer_id);

comment on view audit.user_points_history is
'Where a user''s points came from and went: one row per ledger entry of a user account, oldest first by entry_id, '
'with the system account on the other side (counterparty) and the cause: the winning prediction '
'(settlement_award: day, symbol, prediction id; settlement_correction: the prediction it corrected), '
'the ad (ad_reward), the reward (redemption, refund), or an '
'admin adjustment (memo). Filter by email: select * from audit.user_points_history where email = ''...'' '
'order by entry_id.';

create or replace view audit.settlement_symbols as
select
    s.trading_day,
    s.symbol,
    s.prev_trading_day,
    s.close_prev,
    s.close_today,
    s.change,
    s.outcome,
    s.source,
    s.fetched_at,
    s.settled_at,
    crypto.change_percent(s.change) as change_percent,
    crypto.void_reason(s.outcome, s.close_prev, s.close_today) as void_reason,
    s.correction_id
from crypto.current_settlements as s;

comment on view audit.settlement_symbols is
'Each settled symbol of each day: both raw closes, the exact change and in percent (truncated to 4 places), the '
'outcome and, for VOID, why: threshold (the change stayed within settlement.threshold) or missing_price; '
'as players see it, after any correction (correction_id names the latest).';

create or replace view audit.daily_settlements as
select
    s.trading_day,
    s.phase,
    s.opened_at,
    s.closed_at,
    s.settled_at,
    st.symbols,
    st.up,
    st.down,
    st.void_threshold,
    st.void_missing_price,
    pr.predictions,
    pr.players,
    pr.won,
    pr.lost,
    pr.void,
    aw.awards,
    aw.points_awarded,
    co.corrections,
    co.points_paid_by_corrections,
    co.points_reversed_by_corrections,
    co.points_written_off
from crypto.session_control as s
cross join
    lateral (
        select
            count(*) as symbols,
            count(*) filter (where x.outcome = 'UP') as up,
            count(*) filter (where x.outcome = 'DOWN') as down,
            count(*) filter (
                where crypto.void_reason(x.outcome, x.close_prev, x.close_today) = 'threshold'
            ) as void_threshold,
            count(*) filter (
                where crypto.void_reason(x.outcome, x.close_prev, x.close_today) = 'missing_price'
            ) as void_missing_price
        from crypto.current_settlements as x
        where x.trading_day = s.trading_day
    ) as st
cross join
    lateral (
        select
            count(*) as predictions,
            count(distinct p.user_id) as players,
            count(*) filter (where crypto.prediction_outcome(p.choice, x.outcome) = 'WON') as won,
            count(*) filter (where crypto.prediction_outcome(p.choice, x.outcome) = 'LOST') as lost,
            count(*) filter (where crypto.prediction_outcome(p.choice, x.outcome) = 'VOID') as void
        from crypto.predictions as p
        left join crypto.current_settlements as x on p.trading_day = x.trading_day and p.symbol = x.symbol
        where p.trading_day = s.trading_day
    ) as pr
cross join
    lateral (
        select
            count(*) as awards,
            coalesce(sum(t.amount), 0) as points_awarded
        from crypto.ledger_transfer_keys as k
        inner join crypto.ledger_transfers as t on k.transfer_id = t.id and k.created_at = t.created_at
        where
            starts_with(k.idempotency_key, crypto.award_key_prefix(s.trading_day))
            and t.refusal is null
    ) as aw
cross join lateral (
    select
        count(distinct k.correction_id) as corrections,
        coalesce(sum(k.amount) filter (where k.amount > 0), 0) as points_paid_by_corrections,
        coalesce(-sum(k.amount) filter (where k.amount < 0), 0) as points_reversed_by_corrections,
        coalesce(sum(k.written_off), 0) as points_written_off
    -- Joined through predictions, not by correction_transfers.trading_day
    -- (sql/0038): a view binds its columns, and this file also runs on a
    -- schema before 0038 (tests/python/test_partitions.py).
    from crypto.correction_transfers as k
    inner join crypto.predictions as q on k.prediction_id = q.id
    where q.trading_day = s.trading_day
) as co;

comment on view audit.daily_settlements is
'One row per session (trading_day is the New York date): its phase and times, how its symbols settled (UP, DOWN, '
'VOID by threshold or by missing price), its predictions and players, and the award transfers it paid '
'(awards = won under the original settlement), and what corrections of its closes paid, took back and wrote off '
'(won/lost are as players see them, after corrections: awards + paid - reversed - written off = won x per win).';

grant select on audit.account_balances, audit.user_points_history, audit.settlement_symbols,
audit.daily_settlements to auditor;
