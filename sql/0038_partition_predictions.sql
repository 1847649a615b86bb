-- predictions becomes a range-partitioned parent by month of trading_day,
-- kept by pg_partman like the log tables (sql/0034), converted in place:
-- every row is copied with its id, and the identity resumes after the
-- largest one. Settlement, corrections and a day's metrics read one day:
-- they touch one month's partition whatever the history. A money table:
-- partition_maintenance creates its months ahead and never drops one.
--
-- A unique constraint (and a foreign key's target) of a partitioned table
-- must hold the partition key:
--   * the primary key is (id, trading_day). Only the identity makes ids
--     unique (nothing inserts one of its own: `generated always`).
--   * correction_transfers gains trading_day, the day of the prediction
--     whose points it moved, for its foreign key (prediction_id, trading_day).
--     Filled here from the predictions; correct_settlement writes it.
-- The (user_id, trading_day, symbol) key, which makes a prediction once per
-- player, day and symbol, already holds it.
set local timezone = 'UTC';
-- Every submission writes predictions: give up after 2 s waiting for it
-- (run migrate again) rather than queue the API behind a long transaction.
-- Run it outside a session's accepting hours: the copy holds the table.
set local lock_timeout = '2s';

-- Views that read predictions are bound to the table; plpgsql/views_audit.sql
-- makes them again (create or replace) in the repeatable pass after this.
drop view if exists audit.user_points_history;
drop view if exists audit.daily_settlements;

alter table crypto.correction_transfers drop constraint correction_transfers_prediction_id_fkey;

alter table crypto.predictions rename to predictions_unpartitioned;
alter sequence crypto.predictions_id_seq rename to predictions_unpartitioned_id_seq;
alter table crypto.predictions_unpartitioned rename constraint predictions_pkey to predictions_unpartitioned_pkey;
alter table crypto.predictions_unpartitioned
rename constraint predictions_user_id_trading_day_symbol_key to predictions_unpartitioned_user_day_symbol_key;
alter index crypto.predictions_by_day_symbol rename to predictions_unpartitioned_by_day_symbol;

create table crypto.predictions (
    id bigint generated always as identity,
    user_id uuid not null references crypto.users,
    trading_day date not null references crypto.session_control,
    symbol crypto.symbol not null,
    choice crypto.prediction_choice not null,
    created_at timestamptz not null,
    primary key (id, trading_day),
    unique (user_id, trading_day, symbol),
    foreign key (trading_day, symbol) references crypto.active_universe
) partition by range (trading_day);
create index predictions_by_day_symbol on crypto.predictions (trading_day, symbol);

-- Months from the oldest prediction's (or this one), four ahead, and the
-- month of every prediction there is. No default partition: a row there
-- could never move out while a correction points at it (a foreign key to a
-- partitioned table is checked in the partition the row left), and a
-- prediction's month always exists before it is written (crypto.open_session
-- makes its day's, maintenance four months ahead).
select partman.create_parent(
    p_parent_table => 'crypto.predictions', p_control => 'trading_day', p_type => 'native',
    p_interval => '1 month', p_premake => 4, p_jobmon => false,
    p_start_partition => to_char(
        date_trunc('month', least(now(), (select min(p.trading_day) from crypto.predictions_unpartitioned as p))),
        'YYYY-MM-DD'
    )
);
-- Never dropped: retention stays null here and partition_maintenance leaves
-- the table out of its retention list. A month would only ever be detached
-- to cold storage once a verified backup holds it (README).
update partman.part_config set retention = null, infinite_time_partitions = true, ignore_default_data = true
where parent_table = 'crypto.predictions';
-- ... and of every session there is (one open now, on a demo clock far
-- from the wall clock, may have no prediction yet).
select partman.create_partition_time(
    'crypto.predictions',
    array(
        select date_trunc('month', p.trading_day)::timestamptz from crypto.predictions_unpartitioned as p
        union
        select date_trunc('month', s.trading_day)::timestamptz from crypto.session_control as s
    ),
    false
);
drop table crypto.predictions_default;

insert into crypto.predictions (id, user_id, trading_day, symbol, choice, created_at)
overriding system value
select
    p.id,
    p.user_id,
    p.trading_day,
    p.symbol,
    p.choice,
    p.created_at
from crypto.predictions_unpartitioned as p;
select setval(
    pg_get_serial_sequence('crypto.predictions', 'id'),
    greatest((select max(p.id) from crypto.predictions_unpartitioned as p), 1),
    (select count(*) > 0 from crypto.predictions_unpartitioned)
);

-- correction_transfers is append-only (its guard, plpgsql/append_only.sql,
-- stops the owner too): the one update that fills the new column runs with
-- the table's own triggers off (not the foreign keys'), inside this
-- migration's transaction.
alter table crypto.correction_transfers add column trading_day date;
alter table crypto.correction_transfers disable trigger user;
update crypto.correction_transfers as c
set trading_day = p.trading_day
from crypto.predictions_unpartitioned as p
where p.id = c.prediction_id;
alter table crypto.correction_transfers enable trigger user;
alter table crypto.correction_transfers alter column trading_day set not null;
comment on column crypto.correction_transfers.trading_day is
'The trading day of the prediction whose points the correction moved: with prediction_id, the key of '
'crypto.predictions, which is partitioned by it.';
-- A day's metrics and alerts sum its corrections by their day.
create index correction_transfers_by_day on crypto.correction_transfers (trading_day);
alter table crypto.correction_transfers
add constraint correction_transfers_prediction_fkey
foreign key (prediction_id, trading_day) references crypto.predictions (id, trading_day);

do $check$
begin
    if (select count(*) from crypto.predictions) <> (select count(*) from crypto.predictions_unpartitioned)
        or exists (
            select p.id, p.user_id, p.trading_day, p.symbol, p.choice, p.created_at
            from crypto.predictions_unpartitioned as p
            except
            select n.id, n.user_id, n.trading_day, n.symbol, n.choice, n.created_at
            from crypto.predictions as n
        ) then
        raise exception 'partitioning predictions lost rows';
    end if;
end
$check$;
drop table crypto.predictions_unpartitioned;

-- The grants and policy of sql/0003 on the new parent; partitions get none
-- (every role reads through the parent, whose policy applies).
grant select on crypto.predictions to app_user, oxp_service, auditor;
alter table crypto.predictions enable row level security;
create policy "Predictions are visible to their owner" on crypto.predictions
for select to app_user using ((select crypto.auth_uid()) = user_id);
alter table crypto.predictions owner to oxp_owner;
do $guards$
declare
    v_part regclass;
begin
    for v_part in select i.inhrelid::regclass from pg_inherits as i where i.inhparent = 'crypto.predictions'::regclass loop
        execute format('alter table %s enable row level security', v_part);
        execute format('alter table %s owner to oxp_owner', v_part);
    end loop;
end
$guards$;
