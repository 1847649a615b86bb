-- Corrections without editing history. A close that a settlement read is
-- never overwritten in place by a load: an operator corrects it, with a
-- reason, and the correction is recorded beside what it replaced. The
-- original settlement rows stay as they were; each correction appends the
-- recomputed rows of the symbols it changed, and the latest one is what
-- players see. Compensating transfers pay new winners and take back awards
-- that were paid wrongly, each tied to its correction and prediction.

create table crypto.settlement_corrections (
    id bigint generated always as identity primary key,
    trading_day date not null references crypto.session_control (trading_day),
    reason text not null check (length(btrim(reason)) between 3 and 500),
    actor text not null,
    created_at timestamptz not null
);

-- The closes a correction replaced: old and new side by side.
create table crypto.eod_price_corrections (
    correction_id bigint not null references crypto.settlement_corrections,
    trading_day date not null,
    symbol crypto.symbol not null,
    old_close numeric(20, 6) check (old_close > 0),
    old_source text,
    old_fetched_at timestamptz,
    new_close numeric(20, 6) not null check (new_close > 0),
    primary key (correction_id, trading_day, symbol),
    check (old_close is distinct from new_close)
);

-- A settlement row as a correction recomputed it, for each symbol whose
-- closes changed, in each settled session that read them.
create table crypto.settlement_revisions (
    correction_id bigint not null references crypto.settlement_corrections,
    trading_day date not null,
    symbol crypto.symbol not null,
    prev_trading_day date not null check (prev_trading_day < trading_day),
    close_prev numeric(20, 6),
    close_today numeric(20, 6),
    change numeric,
    outcome crypto.settlement_outcome not null,
    previous_outcome crypto.settlement_outcome not null,
    revised_at timestamptz not null,
    primary key (trading_day, symbol, correction_id),
    foreign key (trading_day, symbol) references crypto.settlements,
    check (
        outcome = 'VOID'
        or (close_prev is not null and close_today is not null and change is not null)
    )
);

-- What a correction did to one prediction whose result it flipped: the
-- points it should now hold for it (`target`), the transfer that moved the
-- difference, and what could not be taken back because the player had
-- already spent it (written off by the house; a balance never goes below
-- zero and a player never owes points).
create table crypto.correction_transfers (
    correction_id bigint not null references crypto.settlement_corrections,
    prediction_id bigint not null references crypto.predictions,
    target bigint not null check (target >= 0),
    amount bigint not null,
    transfer_id bigint references crypto.ledger_transfers,
    written_off bigint not null default 0 check (written_off >= 0),
    primary key (prediction_id, correction_id),
    check ((amount = 0) = (transfer_id is null))
);

create index correction_transfers_by_transfer on crypto.correction_transfers (transfer_id);

alter table crypto.settlement_corrections enable row level security;
alter table crypto.eod_price_corrections enable row level security;
alter table crypto.settlement_revisions enable row level security;
alter table crypto.correction_transfers enable row level security;

-- Players read corrections through api.settlements (which leaves out who
-- made them), never the tables.

-- The terms a day was settled on, so that a correction months later
-- recomputes it by the same threshold and pays the same points per win,
-- whatever the settings say by then.
alter table crypto.session_control
add column points_per_win bigint check (points_per_win > 0),
add column settlement_threshold numeric check (settlement_threshold > 0);

-- Days settled before this release: the points their awards paid (else
-- the setting), and the threshold in force now, the only one on record.
update crypto.session_control as s
set
    points_per_win = coalesce(
        (
            select max(t.amount) from crypto.ledger_transfers as t
            where
                t.reason = 'settlement_award' and t.refusal is null
                and t.idempotency_key like 'settlement:' || to_char(s.trading_day, 'YYYY-MM-DD') || ':%'
        ),
        (
            select (x.value #>> '{}')::bigint from crypto.settings as x
            where x.key = 'points.per_win'
        )
    ),
    settlement_threshold = (
        select (x.value #>> '{}')::numeric from crypto.settings as x
        where x.key = 'settlement.threshold'
    )
where s.phase = 'SETTLED';

-- Price fetches now retry until their day's deadline (plpgsql/schedule.sql):
-- a fetch queued before this release keeps trying instead of dying after 8.
update crypto.jobs
set
    max_attempts = 1000,
    status = case when status = 'dead' then 'queued'::crypto.job_status else status end,
    run_after = case when status = 'dead' then now() else run_after end,
    finished_at = case when status = 'dead' then null else finished_at end
where kind = 'eod.fetch' and status in ('queued', 'running', 'dead');

grant select on crypto.settlement_corrections, crypto.eod_price_corrections, crypto.settlement_revisions,
crypto.correction_transfers to oxp_service, auditor;

-- Replaced by a five-argument form (with the error's detail) in plpgsql/schedule.sql.
drop function if exists crypto.tick_failure(text, date, text, text);

-- Void reasons are read from the settlement players see (after corrections).
drop function if exists crypto.settlement_void_reason(crypto.settlements);
