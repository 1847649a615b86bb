-- Issue 13, item 3: a public nickname per player, and the leaderboard's
-- rollup (one row per player and period), refreshed when a day settles or
-- is corrected (plpgsql/leaderboard.sql), never computed per request.

-- Shown to everyone, so never the email: no "@", no control characters,
-- no surrounding blanks; unique whatever the case.
alter table crypto.users add column nickname text
check (
    nickname is null or (
        char_length(nickname) between 2 and 20
        and nickname !~ '[[:cntrl:]@]'
        and nickname = btrim(nickname)
    )
);
create unique index users_nickname_key on crypto.users (lower(nickname));

-- period_start: the Monday of the week, the first of the month, or
-- 1970-01-01 for all time (New York trading days).
create table crypto.leaderboard (
    period text not null check (period in ('week', 'month', 'all')),
    period_start date not null,
    user_id uuid not null references crypto.users (id),
    points bigint not null check (points >= 0),
    wins integer not null check (wins >= 0),
    losses integer not null check (losses >= 0),
    voids integer not null check (voids >= 0),
    refreshed_at timestamptz not null,
    primary key (period, period_start, user_id)
);
-- The rank order itself, so a page is an index range.
create index leaderboard_rank
on crypto.leaderboard (period, period_start, points desc, wins desc, user_id);
alter table crypto.leaderboard enable row level security;
grant select on crypto.leaderboard to auditor;

insert into crypto.settings (key, value, description) values
('leaderboard.min_decided', '5', 'Decided predictions (wins + losses) a player needs before an accuracy is shown')
on conflict (key) do nothing;
