create schema crypto;
comment on schema crypto is 'OX Predict: the game, the points ledger and everything they need';

create type crypto.session_phase as enum ('OPEN', 'CLOSED', 'SETTLING', 'SETTLED');
create type crypto.prediction_choice as enum ('UP', 'DOWN');
create type crypto.settlement_outcome as enum ('UP', 'DOWN', 'VOID');
create type crypto.user_role as enum ('user', 'admin');
create type crypto.account_kind as enum ('user', 'system');
create type crypto.redemption_status as enum ('REQUESTED', 'ISSUED', 'FAILED', 'CANCELLED');
create type crypto.ad_reward_kind as enum ('SLOT', 'POINTS');
create type crypto.job_status as enum ('queued', 'running', 'done', 'dead');
create type crypto.run_status as enum ('running', 'succeeded', 'failed');
create type crypto.health_status as enum ('ok', 'warn', 'alert');

create domain crypto.symbol as text
check (value ~ '^[A-Z][A-Z0-9.\-]{0,9}$');

-- The stable code and HTTP status of every error SQLSTATE (filled by plpgsql/00_error_codes.sql).
create table crypto.error_codes (
    sqlstate char(5) primary key,
    code text not null check (code ~ '^[A-Z_]+$'),
    http_status smallint not null check (http_status between 400 and 599),
    title text not null
);

-- One row per tunable; SQL functions read them through crypto.setting().
create table crypto.settings (
    key text primary key check (key ~ '^[a-z][a-z0-9_.]*$'),
    value jsonb not null,
    description text not null,
    updated_at timestamptz not null default now()
);

create table crypto.users (
    id uuid primary key default gen_random_uuid(),
    email text not null unique
    check (email = lower(email) and email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    password_hash text check (password_hash like '$argon2id$%'),
    google_sub text unique,
    role crypto.user_role not null default 'user',
    totp_secret text,
    display_name text check (length(display_name) <= 80),
    created_at timestamptz not null default now(),
    disabled_at timestamptz,
    check (password_hash is not null or google_sub is not null),
    check (role = 'user' or totp_secret is not null)
);

create table crypto.oauth_states (
    state text primary key check (length(state) >= 32),
    nonce text not null check (length(nonce) >= 32),
    code_verifier text not null,
    redirect_uri text not null,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    used_at timestamptz,
    check (expires_at > created_at)
);

-- Filled from exchange_calendars by the sidecar; never typed by hand.
create table crypto.trading_calendar (
    trading_day date primary key,
    open_at timestamptz not null,
    close_at timestamptz not null,
    cutoff_at timestamptz not null,
    early_close boolean not null,
    synced_at timestamptz not null default now(),
    check (open_at < close_at),
    check (cutoff_at < open_at)
);

create table crypto.session_control (
    trading_day date primary key references crypto.trading_calendar,
    phase crypto.session_phase not null,
    opened_at timestamptz not null,
    closed_at timestamptz,
    settling_at timestamptz,
    settled_at timestamptz,
    check (phase = 'OPEN' or closed_at is not null),
    check (phase not in ('SETTLING', 'SETTLED') or settling_at is not null),
    check (phase <> 'SETTLED' or settled_at is not null)
);

-- At most one session accepts predictions at a time.
create unique index session_control_one_open
on crypto.session_control ((true)) where phase = 'OPEN';

create table crypto.active_universe (
    trading_day date not null references crypto.trading_calendar,
    symbol crypto.symbol not null,
    position smallint not null check (position between 1 and 100),
    primary key (trading_day, symbol)
);

create table crypto.predictions (
    id bigint generated always as identity primary key,
    user_id uuid not null references crypto.users,
    trading_day date not null references crypto.session_control,
    symbol crypto.symbol not null,
    choice crypto.prediction_choice not null,
    created_at timestamptz not null,
    unique (user_id, trading_day, symbol),
    foreign key (trading_day, symbol) references crypto.active_universe
);

create index predictions_by_day_symbol on crypto.predictions (trading_day, symbol);

-- Per user and session: the counter row is also the lock that serialises
-- one user's concurrent submissions against the daily limit.
create table crypto.user_daily_limits (
    user_id uuid not null references crypto.users,
    trading_day date not null references crypto.trading_calendar,
    predictions_made integer not null default 0 check (predictions_made >= 0),
    slot_unlocks integer not null default 0 check (slot_unlocks >= 0),
    point_rewards integer not null default 0 check (point_rewards >= 0),
    primary key (user_id, trading_day)
);

create table crypto.eod_prices (
    trading_day date not null,
    symbol crypto.symbol not null,
    close numeric(20, 6) not null check (close > 0),
    source text not null,
    fetched_at timestamptz not null,
    primary key (trading_day, symbol)
);

create table crypto.eod_fetch_logs (
    id bigint generated always as identity primary key,
    trading_day date not null,
    provider text not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status crypto.run_status not null,
    rows integer not null default 0 check (rows >= 0),
    error text
);

create table crypto.settlements (
    trading_day date not null,
    symbol crypto.symbol not null,
    prev_trading_day date not null check (prev_trading_day < trading_day),
    close_prev numeric(20, 6),
    close_today numeric(20, 6),
    change numeric,
    outcome crypto.settlement_outcome not null,
    source text,
    fetched_at timestamptz,
    settled_at timestamptz not null,
    primary key (trading_day, symbol),
    foreign key (trading_day, symbol) references crypto.active_universe,
    check (
        outcome = 'VOID'
        or (close_prev is not null and close_today is not null and change is not null)
    )
);

-- Double-entry points ledger. System accounts keep no running balance so
-- that concurrent awards never queue on one hot row; their balance is the
-- sum of their entries.
create table crypto.ledger_accounts (
    id bigint generated always as identity primary key,
    kind crypto.account_kind not null,
    user_id uuid unique references crypto.users,
    code text unique check (code ~ '^[a-z_]+$'),
    balance bigint not null default 0,
    created_at timestamptz not null default now(),
    check ((kind = 'user') = (user_id is not null)),
    check ((kind = 'system') = (code is not null)),
    check (kind = 'system' or balance >= 0),
    check (kind = 'user' or balance = 0)
);

create table crypto.ledger_transfers (
    id bigint generated always as identity primary key,
    idempotency_key text not null unique check (length(idempotency_key) between 3 and 200),
    debit_account_id bigint not null references crypto.ledger_accounts,
    credit_account_id bigint not null references crypto.ledger_accounts,
    amount bigint not null check (amount > 0),
    reason text not null check (reason ~ '^[a-z_]+$'),
    memo text,
    created_at timestamptz not null,
    check (debit_account_id <> credit_account_id)
);

create table crypto.ledger_entries (
    id bigint generated always as identity primary key,
    transfer_id bigint not null references crypto.ledger_transfers,
    account_id bigint not null references crypto.ledger_accounts,
    amount bigint not null check (amount <> 0),
    balance_after bigint check (balance_after >= 0),
    created_at timestamptz not null
);

create index ledger_entries_by_account on crypto.ledger_entries (account_id, id);
create index ledger_entries_by_transfer on crypto.ledger_entries (transfer_id);

create table crypto.rewards_inventory (
    sku text primary key check (sku ~ '^[A-Za-z0-9_\-]{1,40}$'),
    name text not null,
    cost_points bigint not null check (cost_points > 0),
    stock integer not null check (stock >= 0),
    reserved integer not null default 0 check (reserved >= 0),
    issued integer not null default 0 check (issued >= 0),
    active boolean not null default true,
    check (reserved + issued <= stock)
);

create table crypto.rewards_redemptions (
    id bigint generated always as identity primary key,
    user_id uuid not null references crypto.users,
    sku text not null references crypto.rewards_inventory,
    cost_points bigint not null check (cost_points > 0),
    status crypto.redemption_status not null,
    idempotency_key text not null,
    debit_transfer_id bigint not null references crypto.ledger_transfers,
    refund_transfer_id bigint references crypto.ledger_transfers,
    vendor_ref text,
    error text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    unique (user_id, idempotency_key),
    check ((status in ('FAILED', 'CANCELLED')) = (refund_transfer_id is not null))
);

create table crypto.ads (
    id text primary key check (id ~ '^[a-z0-9\-]{1,40}$'),
    title text not null,
    reward_kind crypto.ad_reward_kind not null,
    reward_points bigint not null default 0,
    active boolean not null default true,
    check (
        (reward_kind = 'SLOT' and reward_points = 0)
        or (reward_kind = 'POINTS' and reward_points > 0)
    )
);

create table crypto.ad_unlocks (
    id bigint generated always as identity primary key,
    user_id uuid not null references crypto.users,
    ad_id text not null references crypto.ads,
    trading_day date not null references crypto.trading_calendar,
    reward_kind crypto.ad_reward_kind not null,
    transfer_id bigint references crypto.ledger_transfers,
    idempotency_key text not null,
    created_at timestamptz not null,
    unique (user_id, idempotency_key),
    check ((reward_kind = 'POINTS') = (transfer_id is not null))
);

-- The first response to a write with an Idempotency-Key, replayed on retry.
create table crypto.idempotent_requests (
    scope text not null,
    key text not null check (length(key) between 1 and 200),
    request_hash text not null,
    response jsonb not null,
    created_at timestamptz not null,
    primary key (scope, key)
);

-- Sliding-window counters shared by every API process.
create table crypto.rate_limits (
    bucket text not null,
    window_start timestamptz not null,
    hits integer not null check (hits >= 0),
    primary key (bucket, window_start)
);

-- Append-only and hash-chained: each row's hash covers the previous hash.
create table crypto.audit_logs (
    id bigint generated always as identity primary key,
    at timestamptz not null,
    actor text not null,
    action text not null check (action ~ '^[a-z_.]+$'),
    subject text,
    details jsonb not null default '{}',
    prev_hash bytea,
    hash bytea not null unique
);

create table crypto.system_health (
    id bigint generated always as identity primary key,
    at timestamptz not null,
    check_name text not null,
    status crypto.health_status not null,
    details jsonb not null default '{}'
);

create table crypto.job_runs (
    id bigint generated always as identity primary key,
    job text not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status crypto.run_status not null,
    rows integer,
    error text,
    check ((status = 'running') = (finished_at is null))
);

create index job_runs_by_job on crypto.job_runs (job, started_at desc);

-- The work queue the sidecar worker drains (EOD fetch, vendor calls).
create table crypto.jobs (
    id bigint generated always as identity primary key,
    kind text not null check (kind ~ '^[a-z_.]+$'),
    payload jsonb not null default '{}',
    dedupe_key text unique,
    status crypto.job_status not null default 'queued',
    attempts integer not null default 0 check (attempts >= 0),
    max_attempts integer not null default 8 check (max_attempts > 0),
    run_after timestamptz not null,
    locked_at timestamptz,
    last_error text,
    created_at timestamptz not null,
    finished_at timestamptz
);

create index jobs_due on crypto.jobs (run_after) where status = 'queued';
