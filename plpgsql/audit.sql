-- Appends one row; crypto.audit_seal links it into the hash chain once it
-- has committed. No lock: audited writers never wait for each other here.
-- PL/pgSQL, not SQL: a SQL function with a SET clause is planned again on
-- every call, and every transfer and adjustment writes a row here inside
-- its accounts' locks (its plan cached: ~60 us a call less).
create or replace function crypto.audit(
    p_actor text, p_action text, p_subject text, p_details jsonb
) returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_id bigint;
begin
    insert into crypto.audit_logs (at, actor, action, subject, details)
    values (crypto.now(), p_actor, p_action, p_subject, coalesce(p_details, '{}'))
    returning id into v_id;
    return v_id;
end
$$;

-- Links every row that can no longer change into the chain, in id order,
-- each hashing the previous row's hash with its own content. A row is final
-- once its transaction has ended: every transaction older than the oldest
-- one still running has (and the caller's own rows are final to the caller).
-- One sealer at a time, so positions never fork.
create or replace function crypto.audit_seal() returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    v_own xid8 := pg_current_xact_id_if_assigned();
    v_seq bigint;
    v_prev bytea;
    v_hash bytea;
    v_row crypto.audit_logs;
    v_count integer := 0;
begin
    perform pg_advisory_xact_lock(hashtext('crypto.audit_seal'));
    select l.seq, l.hash into v_seq, v_prev from crypto.audit_logs as l
    where l.seq is not null order by l.seq desc limit 1;
    for v_row in
        select * from crypto.audit_logs as l
        where l.seq is null and (l.txid < v_horizon or l.txid = v_own)
        order by l.id
    loop
        v_seq := coalesce(v_seq, 0) + 1;
        v_hash := crypto.audit_hash(v_prev, v_row.at, v_row.actor, v_row.action, v_row.subject, v_row.details);
        -- `at` names the row's partition (crypto.audit_logs is by month).
        update crypto.audit_logs as l set seq = v_seq, prev_hash = v_prev, hash = v_hash
        where l.id = v_row.id and l.at = v_row.at;
        v_prev := v_hash;
        v_count := v_count + 1;
    end loop;
    return v_count;
end
$$;

grant execute on function crypto.audit_seal() to oxp_service, app_admin;

create or replace function crypto.audit_hash(
    p_prev bytea, p_at timestamptz, p_actor text, p_action text, p_subject text, p_details jsonb
) returns bytea
language sql immutable
as $$
    select sha256(
        coalesce(p_prev, '\x'::bytea)
        || convert_to(
            json_build_array(
                to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                p_actor, p_action, p_subject, p_details
            )::text,
            'UTF8'
        )
    )
$$;

-- Who is acting, for the audit row: the signed-in user, else the database
-- login. Only the API's logins put verified claims in request.jwt.claims;
-- any other session can set that setting to anything, so there it is not
-- believed and the login that really acted is recorded.
-- PL/pgSQL for its cached plan, as crypto.audit.
create or replace function crypto.current_actor() returns text
language plpgsql stable
set search_path = crypto, pg_temp
as $$
begin
    if session_user in ('authenticator', 'admin_authenticator') then
        return coalesce('user:' || crypto.auth_uid()::text, 'role:' || session_user);
    end if;
    -- oxp names the person at the keyboard (--as EMAIL, else the OS user):
    -- a claim, so the login that made it is kept beside it.
    return coalesce(
        'operator:' || nullif(current_setting('oxp.operator', true), '') || ' as role:' || session_user,
        'role:' || session_user
    );
end
$$;

-- Walks the chain in order: each row must link to the hash of the row
-- before it and hash to its own content. Names the first row that does not
-- (an edited row fails its own hash; a removed one breaks the next link).
create or replace function crypto.audit_verify() returns jsonb
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    with checked as (
        select
            l.id,
            l.seq,
            case
                when l.seq is distinct from lag(l.seq) over (order by l.seq) + 1 and l.seq <> 1
                    then 'a row before it in the chain is missing'
                when l.prev_hash is distinct from lag(l.hash) over (order by l.seq)
                    then 'prev_hash is not the hash of the row before it'
                when l.hash <> crypto.audit_hash(l.prev_hash, l.at, l.actor, l.action, l.subject, l.details)
                    then 'the row does not match its hash'
            end as problem
        from crypto.audit_logs as l
        where l.seq is not null
    )
    select jsonb_build_object(
        'rows_checked', (select count(*) from checked),
        -- Not yet sealed (written in the last minute, or still in flight).
        'pending', (select count(*) from crypto.audit_logs as l where l.seq is null),
        'ok', not exists (select from checked as c where c.problem is not null),
        'first_bad', (
            select jsonb_build_object('id', c.id, 'problem', c.problem)
            from checked as c where c.problem is not null order by c.seq limit 1
        )
    )
$$;

grant execute on function crypto.audit_verify() to oxp_operator, app_admin, auditor;
