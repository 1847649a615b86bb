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
-- known to be current.

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
-- operator's oxp metrics) leaves it. Rows computed with the day settled
-- already hold their snapshot: a stamp that says so, or, for a stamp 0027
-- cleared, a row computed after the settlement.
alter table crypto.daily_metrics add column outstanding_settled boolean not null default false;
update crypto.daily_metrics as m set outstanding_settled = true
from crypto.session_control as s
where
    s.trading_day = m.trading_day and s.phase = 'SETTLED'
    and (m.books_stamp like 'SETTLED|%' or (m.books_stamp is null and m.computed_at >= s.settled_at));

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

-- The stamps 0027 cleared, on a row still current: its settled day was
-- computed after the settlement and after the day's last correction, so
-- its figures are what a recompute would give. Any other row (computed
-- before its day settled, or a day not settled yet) keeps no stamp and is
-- recomputed, now without touching a settled snapshot. A new database has
-- no row, and no crypto.metrics_books_stamp yet (the repeatable files come
-- after the versioned ones): hence the dynamic statement.
do $restore$
begin
    if to_regprocedure('crypto.metrics_books_stamp(date)') is not null then
        execute $sql$
            update crypto.daily_metrics as m
            set books_stamp = crypto.metrics_books_stamp(m.trading_day)
            from crypto.session_control as s
            where
                s.trading_day = m.trading_day and m.books_stamp is null
                and s.phase = 'SETTLED' and m.computed_at >= s.settled_at
                and not exists (
                    select from crypto.settlement_revisions as r
                    where r.trading_day = m.trading_day and r.revised_at > m.computed_at
                )
        $sql$;
    end if;
end
$restore$;
