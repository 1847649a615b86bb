-- Two defects of the leaderboard work (issue 13), found in review.
--
-- 1. The board's next_cursor was a plain base64url of the last row's key,
-- the player's id among it: anyone paging the board read user ids, which
-- are private (the board shows nicknames only). The cursor is now sealed
-- with a key kept here (crypto.cursor_seal): it reveals nothing and cannot
-- be forged to start a page, or number its ranks, where the board did not.
--
-- 2. 0027 cleared every daily_metrics.books_stamp so that the next rollup
-- would refresh the board of every settled day. That recomputed every past
-- day's metrics too, in one transaction, and points_outstanding (the
-- players' balances when the row is computed) overwrote each day's history
-- with the balances of that moment. The rollup now never rewrites a
-- settled day's points_outstanding, the board is refreshed through its own
-- stamps, and the stamps 0027 cleared are restored where the rows are
-- known to be current (crypto.metrics_restore_0027).

-- Keys the database keeps for itself. The owner's definer functions read
-- them; no role is granted anything, the auditor included (a secret, like
-- the secret columns of crypto.users). Made here, at random, so a replica
-- and a restored backup hold the same key as the primary. Replacing a key
-- only makes the cursors given before it fail (422): a client starts again
-- from the first page.
create table crypto.server_secrets (
    name text primary key,
    secret bytea not null check (length(secret) >= 32),
    created_at timestamptz not null default now()
);
alter table crypto.server_secrets enable row level security;
revoke all on crypto.server_secrets from public;
insert into crypto.server_secrets (name, secret) values ('cursor', ext.gen_random_bytes(32));

-- points_outstanding is a snapshot: the players' balances when the row was
-- computed. It is taken until the row is first computed with its day
-- settled, then kept: a later recompute (a correction, a cleared stamp, an
-- operator's oxp metrics) leaves it. Which rows already hold their snapshot,
-- and the stamps 0027 cleared: crypto.metrics_restore_0027, below.
alter table crypto.daily_metrics add column outstanding_settled boolean not null default false;

-- The board's own stamps: the books (crypto.metrics_books_stamp) a settled
-- day's board rows were last refreshed from. The rollup refreshes a day
-- whose stamp is missing or moved, a few days a run, so a backfill never
-- rides on the metrics' stamps again. A metrics row stamped SETTLED now was
-- computed since 0027, with its board refreshed in the same step: those
-- days are done; every other settled day is backfilled by the rollup.
create table crypto.leaderboard_stamps (
    trading_day date primary key references crypto.trading_calendar,
    books_stamp text not null,
    refreshed_at timestamptz not null
);
alter table crypto.leaderboard_stamps enable row level security;
grant select on crypto.leaderboard_stamps to auditor;
insert into crypto.leaderboard_stamps (trading_day, books_stamp, refreshed_at)
select
    m.trading_day,
    m.books_stamp,
    m.computed_at
from crypto.daily_metrics as m
where m.books_stamp like 'SETTLED|%';

-- The rows computed with their day settled, and the stamps 0027 cleared
-- where the row is known to be current. A row stamped SETTLED was computed
-- with its day settled. For a stamp 0027 cleared, a time is not enough:
-- settled_at and revised_at are crypto.now(), the START of the settling
-- transaction, so a rollup that ran while a long settlement was still
-- being written computed a row after settled_at that did not see it (its
-- predictions still unsettled). Such a row, or any row that counts an
-- unsettled prediction, keeps no snapshot (the next computation takes it)
-- and no stamp (it is recomputed). A day ever corrected is recomputed too:
-- a row computed while a correction was being written cannot be told from
-- one computed after it. A recompute is harmless now (it keeps a settled
-- snapshot) and costs a few days, not the history. Returns the stamps
-- restored. A function so that its pgTAP (176) can build the state 0027
-- left and run it; it reads crypto.metrics_books_stamp, which a new
-- database does not have yet (the repeatable files come after the
-- versioned ones), and it has nothing to do there: hence the guard below.
create function crypto.metrics_restore_0027() returns integer
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_count integer;
begin
    update crypto.daily_metrics as m set outstanding_settled = true
    from crypto.session_control as s
    where
        s.trading_day = m.trading_day and s.phase = 'SETTLED' and not m.outstanding_settled
        and (
            m.books_stamp like 'SETTLED|%'
            or (m.books_stamp is null and m.computed_at >= s.settled_at and m.unsettled = 0)
        );
    update crypto.daily_metrics as m
    set books_stamp = crypto.metrics_books_stamp(m.trading_day)
    from crypto.session_control as s
    where
        s.trading_day = m.trading_day and m.books_stamp is null
        and s.phase = 'SETTLED' and m.computed_at >= s.settled_at and m.unsettled = 0
        and not exists (select from crypto.settlement_revisions as r where r.trading_day = m.trading_day);
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

do $restore$
begin
    if to_regprocedure('crypto.metrics_books_stamp(date)') is not null then
        perform crypto.metrics_restore_0027();
    end if;
end
$restore$;
