-- A transfer is dated when its transaction began (crypto.now()), and the
-- nightly integrity check reads from a day before its last clean run
-- (crypto.run_integrity_check): a transfer written in a transaction begun
-- long before would be read only by the weekly check, and a ledger page
-- reads the last month with only a day before it (crypto.ledger_page).
-- Nothing that moves points runs that long (the API's roles time out in
-- seconds); an operator's session left open is told to begin again.
create or replace function crypto.require_fresh_transaction(p_max interval default '1 hour') returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
begin
    if clock_timestamp() - now() > p_max then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('Points move in a transaction begun less than %s ago: commit or roll back, then retry', p_max);
    end if;
end
$$;

-- The one function that moves points. Every caller passes an idempotency
-- key derived from the cause (settlement:D:prediction, redeem:<key>, ...).
-- The key remembers the first result, a refusal included: the same key with
-- the same request returns the stored transfer and moves nothing, the same
-- key with another request is refused. A refusal (INSUFFICIENT_POINTS) is
-- not raised here but stored and returned, so that it outlives the caller's
-- decision to raise; callers check `refusal`.
create or replace function crypto.ledger_transfer(
    p_key text,
    p_debit_account bigint,
    p_credit_account bigint,
    p_amount bigint,
    p_reason text,
    p_memo text default null
) returns crypto.ledger_transfers
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_at timestamptz := crypto.now();
    v_id bigint;
    v_transfer crypto.ledger_transfers;
    v_account crypto.ledger_accounts;
    v_refusal text;
begin
    if p_amount is null or p_amount <= 0 or p_key is null or p_reason is null
        or p_debit_account is not distinct from p_credit_account then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A transfer moves a positive amount between two accounts under a key';
    end if;

    -- Claim the key first: its unique index decides, whatever plan PL/pgSQL
    -- cached (a generic plan made while the ledger looked empty would scan
    -- it all), and it hands out the transfer's id. Before the accounts'
    -- locks, so that the time others wait on a player's account is only
    -- the transfer's own rows (the claim cost 8 clients on 4 accounts ~15 %
    -- held inside). A retry waits here for the transaction that holds its
    -- key, as it would on the unique index.
    insert into crypto.ledger_transfer_keys (idempotency_key, created_at)
    values (p_key, v_at)
    on conflict (idempotency_key) do nothing
    returning transfer_id into v_id;
    if v_id is null then
        -- A retry: the stored transfer, in its month.
        v_transfer := crypto.ledger_transfer_by_key(p_key);
        if (v_transfer.debit_account_id, v_transfer.credit_account_id, v_transfer.amount, v_transfer.reason)
            is distinct from (p_debit_account, p_credit_account, p_amount, p_reason) then
            raise exception using errcode = 'OX007', message = 'IDEMPOTENCY_KEY_REUSED',
                detail = format('Transfer key %s was used for another transfer', p_key);
        end if;
        return v_transfer;
    end if;

    -- Fixed lock order (by id) on the user accounts involved: parallel
    -- transfers never deadlock on accounts (only a key reused at the same
    -- moment by a transaction that already holds one of them can: 40P01,
    -- a retry). System accounts keep no running balance, so they are never
    -- locked and never a hot spot.
    perform 1 from crypto.ledger_accounts as a
    where a.id in (p_debit_account, p_credit_account) and a.kind = 'user'
    order by a.id
    for update;
    -- Under the locks, so that an entry is written less than an hour after
    -- its transaction began, however long it waited here.
    perform crypto.require_fresh_transaction();

    select a.* into v_account from crypto.ledger_accounts as a
    where a.id = p_debit_account;
    if v_account.id is null
        or not exists (select from crypto.ledger_accounts as a where a.id = p_credit_account) then
        raise exception using errcode = 'OX004', message = 'NOT_FOUND',
            detail = 'No such ledger account';
    end if;
    if v_account.kind = 'user' and v_account.balance < p_amount then
        v_refusal := 'OX201';
    end if;

    insert into crypto.ledger_transfers
        (id, idempotency_key, debit_account_id, credit_account_id, amount, reason, memo, created_at, refusal)
    values (v_id, p_key, p_debit_account, p_credit_account, p_amount, p_reason, p_memo, v_at, v_refusal)
    returning * into v_transfer;
    if v_refusal is not null then
        return v_transfer;
    end if;

    -- Both sides in one statement (one routing into the month's partition,
    -- not one per entry): each user account's new balance, and the entries
    -- in account order, so that per account entry ids follow the balance
    -- chain. A system account keeps no balance: its entry has none.
    with moved as (
        update crypto.ledger_accounts as a
        set balance = a.balance + case when a.id = p_debit_account then -p_amount else p_amount end
        where a.id in (p_debit_account, p_credit_account) and a.kind = 'user'
        returning a.id, a.balance
    )

    insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
    select v_id, s.account_id, s.amount, m.balance, v_at
    from (values (p_debit_account, -p_amount), (p_credit_account, p_amount)) as s (account_id, amount)
    left join moved as m on m.id = s.account_id
    order by s.account_id;

    perform crypto.audit(crypto.current_actor(), 'points.transfer', p_key, jsonb_build_object(
        'transfer_id', v_transfer.id, 'debit', p_debit_account, 'credit', p_credit_account,
        'amount', p_amount, 'reason', p_reason
    ));
    return v_transfer;
end
$$;

-- For callers that turn a stored refusal into the caller's error.
create or replace function crypto.raise_refusal(p_transfer crypto.ledger_transfers) returns bigint
language plpgsql immutable
set search_path = crypto, pg_temp
as $$
begin
    if p_transfer.refusal = 'OX201' then
        raise exception using errcode = 'OX201', message = 'INSUFFICIENT_POINTS',
            detail = format('This needs %s points, more than the balance', p_transfer.amount);
    elsif p_transfer.refusal is not null then
        raise exception using errcode = p_transfer.refusal, message = 'REFUSED',
            detail = 'The ledger refused this transfer';
    end if;
    return p_transfer.id;
end
$$;

-- A transfer by its id alone (a redemption's debit, an ad unlock's
-- reward) or by its key (a retry, an award): its key row knows its time,
-- so only its month is read. In two statements: with the time a value,
-- PostgreSQL prunes the other months before it starts the scan (a join on
-- the key's time would set up a scan of every month, ~1 ms at 44 months).
create or replace function crypto.ledger_transfer_by_id(p_id bigint) returns crypto.ledger_transfers
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_at timestamptz;
    v_transfer crypto.ledger_transfers;
begin
    select k.created_at into v_at from crypto.ledger_transfer_keys as k where k.transfer_id = p_id;
    select t.* into v_transfer from crypto.ledger_transfers as t where t.id = p_id and t.created_at = v_at;
    return v_transfer;
end
$$;

create or replace function crypto.ledger_transfer_by_key(p_key text) returns crypto.ledger_transfers
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_id bigint;
    v_at timestamptz;
    v_transfer crypto.ledger_transfers;
begin
    select k.transfer_id, k.created_at into v_id, v_at from crypto.ledger_transfer_keys as k
    where k.idempotency_key = p_key;
    select t.* into v_transfer from crypto.ledger_transfers as t where t.id = v_id and t.created_at = v_at;
    return v_transfer;
end
$$;

create or replace function crypto.system_account(p_code text) returns bigint
language sql stable
set search_path = crypto, pg_temp
as $$ select a.id from crypto.ledger_accounts as a where a.code = p_code $$;

create or replace function crypto.user_account(p_user uuid) returns bigint
language sql stable
set search_path = crypto, pg_temp
as $$ select a.id from crypto.ledger_accounts as a where a.user_id = p_user $$;

-- Whether a key of a batch of credits names another transfer than its
-- credit (ledger_credit_many refuses the batch, as ledger_transfer refuses
-- a key reused). A key without its transfer, which only a writer past
-- these functions could leave, counts as taken: skipping it would count
-- it as paid.
create or replace function crypto.batch_key_taken(
    p_debit_account bigint, p_reason text, p_keys text[], p_credit_accounts bigint[], p_amounts bigint[]
) returns boolean
language sql stable
set search_path = crypto, pg_temp
as $$
    select exists (
        select from unnest(p_keys, p_credit_accounts, p_amounts) as i (key, account, amount)
        join crypto.ledger_transfer_keys as k on k.idempotency_key = i.key
        left join crypto.ledger_transfers as t on t.id = k.transfer_id and t.created_at = k.created_at
        where (t.debit_account_id, t.credit_account_id, t.amount, t.reason)
            is distinct from (p_debit_account, i.account, i.amount, p_reason)
    )
$$;

-- The set-based form of ledger_transfer for a day's awards: many credits
-- from one system account to user accounts, in one statement, so a million
-- winners settle in seconds. Credits only: no user balance can go down.
-- The same rules hold: one transfer per idempotency key (replays change
-- nothing, a key reused for another request is refused), user accounts
-- locked in id order, each entry carrying its account's balance after it.
create or replace function crypto.ledger_credit_many(
    p_debit_account bigint,
    p_reason text,
    p_keys text[],
    p_credit_accounts bigint[],
    p_amounts bigint[]
) returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
-- A day's awards sort a few hundred thousand rows: in memory, not on disk.
set work_mem = '128MB'
as $$
declare
    v_at timestamptz := crypto.now();
    v_new integer;
    v_total bigint;
    v_first bigint;
    v_last bigint;
    v_keys text[];
    v_accounts bigint[];
    v_amounts bigint[];
begin
    if not exists (select from crypto.ledger_accounts as a where a.id = p_debit_account and a.kind = 'system') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Batch credits come from a system account';
    end if;
    if cardinality(p_keys) is distinct from cardinality(p_credit_accounts)
        or cardinality(p_keys) is distinct from cardinality(p_amounts) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'keys, accounts and amounts must have the same length';
    end if;
    if exists (select from unnest(p_amounts) as x where x is null or x <= 0)
        or (select count(distinct k) from unnest(p_keys) as k) <> cardinality(p_keys) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Each credit has its own key and a positive amount';
    end if;

    -- Joins, not `= any(array)`: PostgreSQL 15 scans a large array parameter
    -- linearly for every row, which made a day's awards quadratic.
    perform 1 from crypto.ledger_accounts as a
    join (select distinct x.id from unnest(p_credit_accounts) as x (id)) as c on c.id = a.id
    where a.kind = 'user'
    order by a.id
    for update of a;
    perform crypto.require_fresh_transaction();
    if (
        select count(*) from crypto.ledger_accounts as a
        join (select distinct x.id from unnest(p_credit_accounts) as x (id)) as c on c.id = a.id
        where a.kind = 'user'
    ) <> (select count(distinct x) from unnest(p_credit_accounts) as x) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Batch credits go to user accounts';
    end if;

    if crypto.batch_key_taken(p_debit_account, p_reason, p_keys, p_credit_accounts, p_amounts) then
        raise exception using errcode = 'OX007', message = 'IDEMPOTENCY_KEY_REUSED',
            detail = 'A transfer key of this batch was used for another transfer';
    end if;

    -- The keys not yet paid, chosen before anything is inserted: an
    -- anti-join in the inserting statement would re-read its own new rows.
    -- One index probe per key (a lateral subquery with a limit is never
    -- flattened into a join): as a `not exists` the planner hashed every
    -- key ever issued for a day's few hundred thousand, so settlement
    -- slowed as the ledger grew (5 s of a 1M-prediction day beside a
    -- 20M-entry ledger: README "Benchmarks").
    select array_agg(i.key), array_agg(i.account), array_agg(i.amount)
    into v_keys, v_accounts, v_amounts
    from unnest(p_keys, p_credit_accounts, p_amounts) as i (key, account, amount)
    left join lateral (
        select true as paid from crypto.ledger_transfer_keys as k where k.idempotency_key = i.key limit 1
    ) as k on true
    where k.paid is null;
    if v_keys is null then
        return 0;
    end if;

    -- Keys claimed first (a key another batch claimed meanwhile is skipped),
    -- in the batch's order: they hand out the transfers' ids.
    with     keyed as (
        insert into crypto.ledger_transfer_keys (idempotency_key, created_at)
        select i.key, v_at
        from unnest(v_keys) with ordinality as i (key, n)
        order by i.n
        on conflict (idempotency_key) do nothing
        returning transfer_id, idempotency_key
    ),

    inserted as (
        insert into crypto.ledger_transfers
            (id, idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
        select k.transfer_id, k.idempotency_key, p_debit_account, i.account, i.amount, p_reason, v_at
        from keyed as k
        join unnest(v_keys, v_accounts, v_amounts) as i (key, account, amount) on i.key = k.idempotency_key
        returning id, credit_account_id, amount
    ),

    -- Every statement of this query sees the balances from before it.
    running as (
        select
            i.id, i.credit_account_id, i.amount,
            a.balance + sum(i.amount) over (partition by i.credit_account_id order by i.id) as balance_after
        from inserted as i
        join crypto.ledger_accounts as a on a.id = i.credit_account_id
    ),

    entries as (
        insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
        select r.id, e.account_id, e.amount, e.balance_after, v_at
        from running as r
        cross join lateral (values
            (1, p_debit_account, -r.amount, null::bigint),
            (2, r.credit_account_id, r.amount, r.balance_after)
        ) as e (side, account_id, amount, balance_after)
        -- Per account, entry ids follow the running balance; this is the
        -- window's own order, so no second sort.
        order by r.credit_account_id, r.id, e.side
    ),

    balances as (
        update crypto.ledger_accounts as a set balance = a.balance + s.total
        from (select credit_account_id, sum(amount) as total from inserted group by credit_account_id) as s
        where a.id = s.credit_account_id
    )

    select count(*), sum(i.amount), min(i.id), max(i.id) into v_new, v_total, v_first, v_last
    from inserted as i;
    -- A key claimed meanwhile by another transaction (waited for, then
    -- skipped): it must be this credit's, or the batch is refused as the
    -- single form refuses it. A new statement, so it sees that commit.
    if v_new < cardinality(v_keys)
        and crypto.batch_key_taken(p_debit_account, p_reason, v_keys, v_accounts, v_amounts) then
        raise exception using errcode = 'OX007', message = 'IDEMPOTENCY_KEY_REUSED',
            detail = 'A transfer key of this batch was used meanwhile for another transfer';
    end if;
    -- One audit row per batch: a million audit rows (each written now and
    -- hashed into the chain by crypto.audit_seal later) would double the
    -- settlement's writes, and the transfers themselves are append-only;
    -- the row names the range and the total.
    if v_new > 0 then
        perform crypto.audit(crypto.current_actor(), 'points.transfer_batch', p_reason, jsonb_build_object(
            'debit', p_debit_account, 'transfers', v_new, 'amount', v_total,
            'first_transfer_id', v_first, 'last_transfer_id', v_last
        ));
    end if;
    return v_new;
end
$$;
