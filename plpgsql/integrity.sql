-- Every invariant of points, stock and settlement, as one query each; an
-- empty result means healthy. Constraints already forbid most of these: the
-- checks are for what a constraint cannot see (sums across rows), and for
-- proof that nothing got past the constraints.
--
-- p_since: what to read. '-infinity' reads everything (integrity_violations()
-- below). A later time reads the ledger written since then (its months only:
-- the ledger is partitioned by them), the sessions settled since, and the
-- rows those name, and continues each player's balance chain from their
-- checkpoint (crypto.ledger_checkpoints, which a full read ignores). The
-- small tables (redemptions, corrections, stock) are read whole either way.
-- STABLE, so every statement here reads the caller's one snapshot.
create or replace function crypto.integrity_violations(p_since timestamptz)
returns table (check_name text, subject text, details jsonb)
language plpgsql stable security definer
set search_path = crypto, pg_temp
set work_mem = '128MB'
as $$
declare
    v_full boolean := p_since = '-infinity';
    v_days date [];
    v_first_transfer bigint;
begin
    -- The days whose settlement (or awards) fall in what is read: each is
    -- read in its own month of predictions.
    v_days := array(
        select c.trading_day from crypto.session_control as c
        where c.phase = 'SETTLED' and (v_full or c.settled_at >= p_since)
        union
        select crypto.award_key_day(t.idempotency_key) from crypto.ledger_transfers as t
        where t.created_at >= p_since and t.reason = 'settlement_award'
    );
    -- Keys are found by id (their table is not by time): from the first
    -- transfer read on (a key of this time has its transfer's time, so an
    -- id at least that one's), or all of them.
    v_first_transfer := case when v_full then 0 else coalesce(
        (select min(t.id) from crypto.ledger_transfers as t where t.created_at >= p_since),
        (select max(k.transfer_id) + 1 from crypto.ledger_transfer_keys as k),
        0
    ) end;

    return query
    -- A posted transfer has exactly its two entries, of its time (its
    -- month): -amount on the debit account, +amount on the credit account.
    -- A refused one has none, and no entry is without its transfer.
    select 'transfer_entries', 'transfer:' || coalesce(t.id, e.transfer_id),
        jsonb_build_object('refusal', t.refusal, 'entries', coalesce(e.n, 0), 'debit_side', e.debit_side,
            'credit_side', e.credit_side, 'amount', t.amount, 'entries_at', e.times, 'transfer_at', t.created_at)
    from (select z.* from crypto.ledger_transfers as z where z.created_at >= p_since) as t
    full join (
        select x.transfer_id, count(*) as n,
            sum(x.amount) filter (where x.amount < 0) as debit_side,
            sum(x.amount) filter (where x.amount > 0) as credit_side,
            array_agg(x.account_id order by x.amount) as accounts,
            array_agg(distinct x.created_at) as times
        from crypto.ledger_entries as x where x.created_at >= p_since group by x.transfer_id
    ) as e on e.transfer_id = t.id
    where t.id is null
        or (t.refusal is not null and e.n is not null)
        or (t.refusal is null and (
            e.n is distinct from 2 or e.debit_side is distinct from -t.amount
            or e.credit_side is distinct from t.amount
            or e.accounts is distinct from array[t.debit_account_id, t.credit_account_id]
            or e.times is distinct from array[t.created_at]
        ))

    -- Every transfer is its key's (a foreign key), and every key has its
    -- transfer, under the same key and time: both are written by one
    -- statement of crypto.ledger_transfer or ledger_credit_many (sql/0040).
    union all
    select 'transfer_key', 'transfer:' || coalesce(k.transfer_id, t.id),
        jsonb_build_object('key', k.idempotency_key, 'transfer_key', t.idempotency_key,
            'key_at', k.created_at, 'transfer_at', t.created_at)
    from (
        select y.* from crypto.ledger_transfer_keys as y
        where y.transfer_id >= v_first_transfer and y.created_at >= p_since
    ) as k
    full join (select z.* from crypto.ledger_transfers as z where z.created_at >= p_since) as t
        on t.id = k.transfer_id
    where (k.idempotency_key, k.created_at) is distinct from (t.idempotency_key, t.created_at)

    -- An entry has its transfer's time, so what is read holds whole
    -- transfers: it sums to zero.
    union all
    select 'ledger_sum', 'all entries', jsonb_build_object('sum', sum(e.amount))
    from crypto.ledger_entries as e
    where e.created_at >= p_since
    having coalesce(sum(e.amount), 0) <> 0

    -- A user's stored balance is the sum of their entries (from their
    -- checkpoint on); a system account keeps none (its balance is the sum
    -- of its entries, by definition).
    union all
    select 'balance_mismatch', 'account:' || a.id,
        jsonb_build_object('stored', a.balance, 'entries', coalesce(c.balance, 0) + coalesce(s.total, 0),
            'kind', a.kind, 'checkpoint', c.entry_id)
    from crypto.ledger_accounts as a
    left join crypto.ledger_checkpoints as c on c.account_id = a.id and not v_full
    left join (
        select e.account_id, sum(e.amount) as total
        from crypto.ledger_entries as e
        left join crypto.ledger_checkpoints as x on x.account_id = e.account_id and not v_full
        where e.created_at >= p_since and e.id > coalesce(x.entry_id, 0)
        group by e.account_id
    ) as s on s.account_id = a.id
    where (a.kind = 'user' and a.balance <> coalesce(c.balance, 0) + coalesce(s.total, 0))
        or (a.kind = 'system' and a.balance <> 0)

    -- Each user entry's balance_after is the running sum up to it (from
    -- the account's checkpoint on).
    union all
    select 'balance_chain', 'entry:' || r.id,
        jsonb_build_object('account', r.account_id, 'balance_after', r.balance_after, 'running', r.running)
    from (
        select e.id, e.account_id, e.balance_after, a.kind,
            coalesce(x.balance, 0) + sum(e.amount) over (partition by e.account_id order by e.id) as running
        from crypto.ledger_entries as e
        join crypto.ledger_accounts as a on a.id = e.account_id
        left join crypto.ledger_checkpoints as x on x.account_id = e.account_id and not v_full
        where e.created_at >= p_since and e.id > coalesce(x.entry_id, 0)
    ) as r
    where (r.kind = 'user' and r.balance_after is distinct from r.running)
        or (r.kind = 'system' and r.balance_after is not null)

    union all
    select 'negative_balance', 'account:' || a.id, jsonb_build_object('balance', a.balance)
    from crypto.ledger_accounts as a
    where a.kind = 'user' and a.balance < 0

    -- reserved and issued are counts of redemptions, within stock.
    union all
    select 'inventory', 'sku:' || i.sku,
        jsonb_build_object('stock', i.stock, 'reserved', i.reserved, 'issued', i.issued,
            'requested_redemptions', coalesce(c.requested, 0), 'issued_redemptions', coalesce(c.issued, 0))
    from crypto.rewards_inventory as i
    left join (
        select r.sku, count(*) filter (where r.status in ('REQUESTED', 'UNKNOWN')) as requested,
            count(*) filter (where r.status = 'ISSUED') as issued
        from crypto.rewards_redemptions as r group by r.sku
    ) as c on c.sku = i.sku
    where i.reserved <> coalesce(c.requested, 0) or i.issued <> coalesce(c.issued, 0)
        or i.reserved + i.issued > i.stock or i.stock < 0

    -- A redemption was paid for exactly once, and refunded exactly what
    -- was paid when it failed or was cancelled, never otherwise. (Its
    -- transfers by id: through their keys, to their months.)
    union all
    select 'redemption_ledger', 'redemption:' || r.id,
        jsonb_build_object('status', r.status, 'cost', r.cost_points, 'debit', d.amount, 'refund', f.amount)
    from crypto.rewards_redemptions as r
    left join crypto.ledger_transfer_keys as dk on dk.transfer_id = r.debit_transfer_id
    left join crypto.ledger_transfers as d on d.id = dk.transfer_id and d.created_at = dk.created_at
    left join crypto.ledger_transfer_keys as fk on fk.transfer_id = r.refund_transfer_id
    left join crypto.ledger_transfers as f on f.id = fk.transfer_id and f.created_at = fk.created_at
    left join crypto.ledger_accounts as a on a.user_id = r.user_id
    where d.refusal is not null or d.amount is distinct from r.cost_points
        or d.debit_account_id is distinct from a.id
        or (r.status in ('FAILED', 'CANCELLED') and (
            f.refusal is not null or f.amount is distinct from d.amount
            or f.credit_account_id is distinct from d.debit_account_id
        ))
        or (r.status not in ('FAILED', 'CANCELLED') and r.refund_transfer_id is not null)

    -- A prediction's id names it on its own (an award key, a correction
    -- names only the id and its day), but since predictions is partitioned
    -- by day (sql/0038) only the identity makes it unique: a second row
    -- with an id could only be written past it (overriding system value).
    union all
    select 'prediction_id_repeated', 'prediction:' || p.id,
        jsonb_build_object('trading_days', jsonb_agg(p.trading_day order by p.trading_day))
    from crypto.predictions as p
    where v_full or p.trading_day = any(v_days)
    group by p.id
    having count(*) > 1

    -- A settled session settled every symbol it had predictions on.
    union all
    select 'unsettled_prediction', 'prediction:' || p.id,
        jsonb_build_object('trading_day', p.trading_day, 'symbol', p.symbol)
    from crypto.predictions as p
    join crypto.session_control as c on c.trading_day = p.trading_day and c.phase = 'SETTLED'
    where p.trading_day = any(v_days) and not exists (
        select from crypto.settlements as s where s.trading_day = p.trading_day and s.symbol = p.symbol
    )

    -- An award pays one winning prediction of its day, to its owner.
    union all
    select 'award_without_win', 'transfer:' || t.id,
        jsonb_build_object('key', t.idempotency_key, 'outcome', s.outcome, 'choice', p.choice)
    from crypto.ledger_transfers as t
    left join crypto.predictions as p
        on p.id = crypto.award_key_prediction(t.idempotency_key)
        and p.trading_day = crypto.award_key_day(t.idempotency_key)
        and p.trading_day = any(v_days)
    left join crypto.settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
    left join crypto.ledger_accounts as a on a.user_id = p.user_id
    where t.created_at >= p_since and t.reason = 'settlement_award'
        and (p.id is null or s.outcome is null or not crypto.prediction_won(p.choice, s.outcome)
            or t.credit_account_id is distinct from a.id)

    -- ... and every winning prediction of a settled day was paid.
    union all
    select 'win_without_award', 'prediction:' || p.id,
        jsonb_build_object('trading_day', p.trading_day, 'symbol', p.symbol)
    from crypto.predictions as p
    join crypto.session_control as c on c.trading_day = p.trading_day and c.phase = 'SETTLED'
    join crypto.settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
    where p.trading_day = any(v_days) and crypto.prediction_won(p.choice, s.outcome) and not exists (
        select from crypto.ledger_transfer_keys as k
        join crypto.ledger_transfers as t on t.id = k.transfer_id and t.created_at = k.created_at
        where k.idempotency_key = crypto.award_key(p.trading_day, p.id) and t.refusal is null
    )

    -- Every movement through a system account has its cause on record: an
    -- award its winning prediction (checked above), a redemption's debit or
    -- refund its redemption, an ad reward its unlock, an adjustment its
    -- audited admin action. Anything else minted or burned points.
    union all
    select 'unexplained_transfer', 'transfer:' || t.id,
        jsonb_build_object('reason', t.reason, 'amount', t.amount, 'key', t.idempotency_key)
    from crypto.ledger_transfers as t
    join crypto.ledger_accounts as d on d.id = t.debit_account_id
    join crypto.ledger_accounts as c on c.id = t.credit_account_id
    where t.created_at >= p_since and t.refusal is null and (d.kind = 'system' or c.kind = 'system') and not (
        (d.code = 'issuance' and t.reason = 'settlement_award')
        or (c.code = 'redemptions' and exists (
            select from crypto.rewards_redemptions as r where r.debit_transfer_id = t.id
        ))
        or (d.code = 'redemptions' and exists (
            select from crypto.rewards_redemptions as r where r.refund_transfer_id = t.id
        ))
        or (d.code = 'ads' and exists (select from crypto.ad_unlocks as u where u.transfer_id = t.id))
        or ('adjustments' in (d.code, c.code) and exists (
            select from crypto.audit_logs as l where l.action = 'points.adjust' and l.subject = t.idempotency_key
        ))
        or ('issuance' in (d.code, c.code) and t.reason = 'settlement_correction' and exists (
            select from crypto.correction_transfers as k where k.transfer_id = t.id
        ))
    )

    -- A correction's transfer moves exactly what it recorded, between the
    -- prediction's owner and the issuance account, in the recorded direction.
    union all
    select 'correction_ledger', 'prediction:' || k.prediction_id,
        jsonb_build_object('correction', k.correction_id, 'amount', k.amount, 'transfer_id', k.transfer_id,
            'transferred', t.amount, 'refusal', t.refusal)
    from crypto.correction_transfers as k
    join crypto.predictions as p on p.id = k.prediction_id and p.trading_day = k.trading_day
    join crypto.ledger_accounts as a on a.user_id = p.user_id
    left join crypto.ledger_transfer_keys as tk on tk.transfer_id = k.transfer_id
    left join crypto.ledger_transfers as t on t.id = tk.transfer_id and t.created_at = tk.created_at
    where k.transfer_id is not null and (
        t.refusal is not null or t.amount is distinct from abs(k.amount)
        or (k.amount > 0 and (t.credit_account_id <> a.id or t.debit_account_id <> crypto.system_account('issuance')))
        or (k.amount < 0 and (t.debit_account_id <> a.id or t.credit_account_id <> crypto.system_account('issuance')))
    )

    -- A corrected prediction holds what its latest correction says it
    -- should (plus what was written off), and wins under the settlement
    -- players see exactly when that target is a win's.
    union all
    select 'corrected_prediction_points', 'prediction:' || p.id,
        jsonb_build_object('held', crypto.prediction_points(p.id, p.trading_day), 'target', x.target,
            'written_off', x.written_off, 'outcome', s.outcome, 'choice', p.choice)
    from (
        select k.prediction_id, k.trading_day,
            (array_agg(k.target order by k.correction_id desc))[1] as target,
            (array_agg(k.written_off order by k.correction_id desc))[1] as written_off
        from crypto.correction_transfers as k group by k.prediction_id, k.trading_day
    ) as x
    join crypto.predictions as p on p.id = x.prediction_id and p.trading_day = x.trading_day
    join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
    where crypto.prediction_points(p.id, p.trading_day) <> x.target + x.written_off
        or (x.target > 0) <> crypto.prediction_won(p.choice, s.outcome)

    -- An ad's points arrived, and only for a POINTS ad.
    union all
    select 'ad_reward_ledger', 'ad_unlock:' || u.id,
        jsonb_build_object('reward_kind', u.reward_kind, 'transfer_id', u.transfer_id)
    from crypto.ad_unlocks as u
    left join crypto.ledger_transfer_keys as tk on tk.transfer_id = u.transfer_id
    left join crypto.ledger_transfers as t on t.id = tk.transfer_id and t.created_at = tk.created_at
    where u.created_at >= p_since and (u.reward_kind = 'POINTS') <> (t.id is not null and t.refusal is null);
end
$$;

-- Only run_integrity_check reads part of the ledger (the owner's).

-- Everything, read whole: on demand (oxp integrity, admins, the auditor),
-- and weekly by run_integrity_check.
create or replace function crypto.integrity_violations()
returns table (check_name text, subject text, details jsonb)
language sql stable security definer
set search_path = crypto, pg_temp
as $$ select * from crypto.integrity_violations('-infinity') $$;

grant execute on function crypto.integrity_violations() to oxp_operator, app_admin, auditor;

-- The daily run: records what it found, raises an alert row on any
-- violation, and returns the count. It reads the ledger written since its
-- last clean run, less a day: a transfer is dated when its transaction
-- began, and one still open at the last run (never a day long) is read
-- now. Everything, once a week, when asked (p_full), and until a full run
-- has been clean. A clean run moves each player's checkpoint on to the
-- last entry it verified, in the statement that found nothing (one
-- snapshot: what it checked is what it records).
create or replace function crypto.run_integrity_check(p_full boolean default false) returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_run bigint;
    v_started timestamptz := crypto.now();
    v_clock timestamptz := clock_timestamp();
    v_last_clean timestamptz;
    v_last_full timestamptz;
    v_since timestamptz;
    v_found jsonb;
    v_count integer;
    v_advanced integer;
begin
    insert into crypto.job_runs (job, started_at, status)
    values ('integrity_check', v_clock, 'running')
    returning id into v_run;
    -- Runs dated after now (a demo clock moved back since) are ignored:
    -- they would hide what was written in between.
    select
        max(l.started_at) filter (where l.violations = 0),
        max(l.started_at) filter (where l.violations = 0 and l.since = '-infinity')
    into v_last_clean, v_last_full
    from crypto.ledger_verifications as l
    where l.started_at <= v_started;
    v_since := case
        when p_full or v_last_full is null or v_last_full <= v_started - interval '7 days' then '-infinity'
        else v_last_clean - interval '1 day'
    end;

    with found as materialized (
        select v.check_name, v.subject, v.details from crypto.integrity_violations(v_since) as v
    ),

    latest as (
        select distinct on (e.account_id) e.account_id, e.id, e.balance_after
        from crypto.ledger_entries as e
        join crypto.ledger_accounts as a on a.id = e.account_id and a.kind = 'user'
        where e.created_at >= v_since
        order by e.account_id asc, e.id desc
    ),

    advanced as (
        insert into crypto.ledger_checkpoints as c (account_id, entry_id, balance, checked_at)
        select l.account_id, l.id, l.balance_after, v_started from latest as l
        where not exists (select from found)
        on conflict (account_id) do update
        set entry_id = excluded.entry_id, balance = excluded.balance, checked_at = excluded.checked_at
        -- A full run writes what it verified whatever was there before.
        where excluded.entry_id > c.entry_id or v_since = '-infinity'
        returning 1
    )

    select coalesce(jsonb_agg(to_jsonb(f)), '[]'), count(*), (select count(*) from advanced)
    into v_found, v_count, v_advanced
    from found as f;

    insert into crypto.ledger_verifications (started_at, since, violations, accounts_advanced, seconds)
    values (v_started, v_since, v_count, v_advanced, round(extract(epoch from clock_timestamp() - v_clock), 3));
    insert into crypto.system_health (at, check_name, status, details)
    values (crypto.now(), 'integrity', (case when v_count = 0 then 'ok' else 'alert' end)::crypto.health_status,
        jsonb_build_object('violations', v_count, 'since', v_since,
            'first', (select coalesce(jsonb_agg(x), '[]') from (
                select x from jsonb_array_elements(v_found) as x limit 100) as f)));
    update crypto.job_runs
    set finished_at = clock_timestamp(), status = 'succeeded', rows = v_count
    where id = v_run;
    return v_count;
end
$$;

drop function if exists crypto.run_integrity_check();
grant execute on function crypto.run_integrity_check(boolean) to oxp_service, app_admin;
