-- The one function that moves points. Every caller passes an idempotency
-- key derived from the cause (settlement:D:prediction, redeem:<key>, ...):
-- the same key with the same request returns the first transfer, the same
-- key with another request is refused.
create or replace function crypto.ledger_transfer(
    p_key text,
    p_debit_account bigint,
    p_credit_account bigint,
    p_amount bigint,
    p_reason text,
    p_memo text default null
) returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_at timestamptz := crypto.now();
    v_transfer crypto.ledger_transfers;
    v_account crypto.ledger_accounts;
    v_delta bigint;
begin
    if p_amount is null or p_amount <= 0 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A transfer moves a positive amount';
    end if;

    -- Fixed lock order (by id) on the user accounts involved: parallel
    -- transfers never deadlock. System accounts keep no running balance,
    -- so they are never locked and never a hot spot.
    perform 1 from crypto.ledger_accounts as a
    where a.id in (p_debit_account, p_credit_account) and a.kind = 'user'
    order by a.id
    for update;

    select * into v_transfer from crypto.ledger_transfers as t where t.idempotency_key = p_key;
    if found then
        if (v_transfer.debit_account_id, v_transfer.credit_account_id, v_transfer.amount, v_transfer.reason)
            is distinct from (p_debit_account, p_credit_account, p_amount, p_reason) then
            raise exception using errcode = 'OX007', message = 'IDEMPOTENCY_KEY_REUSED',
                detail = format('Transfer key %s was used for another transfer', p_key);
        end if;
        return v_transfer.id;
    end if;

    insert into crypto.ledger_transfers
        (idempotency_key, debit_account_id, credit_account_id, amount, reason, memo, created_at)
    values (p_key, p_debit_account, p_credit_account, p_amount, p_reason, p_memo, v_at)
    returning * into v_transfer;

    for v_account in
        select * from crypto.ledger_accounts as a
        where a.id in (p_debit_account, p_credit_account)
        order by a.id
    loop
        v_delta := case when v_account.id = p_debit_account then -p_amount else p_amount end;
        if v_account.kind = 'user' then
            if v_account.balance + v_delta < 0 then
                raise exception using errcode = 'OX201', message = 'INSUFFICIENT_POINTS',
                    detail = format('Balance %s, needed %s', v_account.balance, p_amount);
            end if;
            update crypto.ledger_accounts as a set balance = a.balance + v_delta
            where a.id = v_account.id;
            insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
            values (v_transfer.id, v_account.id, v_delta, v_account.balance + v_delta, v_at);
        else
            insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
            values (v_transfer.id, v_account.id, v_delta, null, v_at);
        end if;
    end loop;
    return v_transfer.id;
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
