-- Business metrics (issue 11, item 2): one row per trading day, computed
-- after the fact, so reading metrics never scans the ledger.

-- Who used the game on a KST date: a signed-in request (the rate limiter
-- sees every one) or a prediction. No foreign key: a token of a user
-- deleted since must not make rate limiting fail.
create table crypto.daily_activity (
    kst_day date not null,
    user_id uuid not null,
    primary key (kst_day, user_id)
);

create table crypto.daily_metrics (
    trading_day date primary key references crypto.trading_calendar,
    computed_at timestamptz not null,
    active_users integer not null check (active_users >= 0),
    participants integer not null check (participants >= 0),
    predictions integer not null check (predictions >= 0),
    wins integer not null check (wins >= 0),
    losses integer not null check (losses >= 0),
    voids integer not null check (voids >= 0),
    unsettled integer not null check (unsettled >= 0),
    points_settlement bigint not null,
    points_ads bigint not null check (points_ads >= 0),
    points_adjustments bigint not null,
    points_redeemed bigint not null check (points_redeemed >= 0),
    points_refunded bigint not null check (points_refunded >= 0),
    points_outstanding bigint not null check (points_outstanding >= 0),
    redemptions jsonb not null,
    -- Ads shown (impressions, by reward kind) and rewarded (verified by the network).
    ad_clicks jsonb not null,
    ad_rewards jsonb not null,
    -- What the row was computed from (crypto.metrics_books_stamp).
    books_stamp text,
    check (wins + losses + voids + unsettled = predictions),
    check (participants <= predictions)
);

-- Transfers by time for the rollup's window, except the awards (found by
-- their keys): settlement's million inserts a day never touch this index.
create index ledger_transfers_by_time_not_awards on crypto.ledger_transfers (created_at)
where reason <> 'settlement_award';

-- Read through definer functions only; the auditor bypasses RLS.
alter table crypto.daily_activity enable row level security;
alter table crypto.daily_metrics enable row level security;
grant select on crypto.daily_metrics, crypto.daily_activity to auditor;
