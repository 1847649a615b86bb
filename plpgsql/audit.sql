-- Appends one row to the hash chain. The chain lock serialises writers so
-- each row's prev_hash is the hash of the row committed just before it.
create or replace function crypto.audit(
    p_actor text, p_action text, p_subject text, p_details jsonb
) returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_prev bytea;
    v_at timestamptz := crypto.now();
    v_id bigint;
begin
    perform pg_advisory_xact_lock(hashtext('crypto.audit_logs'));
    select a.hash into v_prev from crypto.audit_logs as a order by a.id desc limit 1;
    insert into crypto.audit_logs (at, actor, action, subject, details, prev_hash, hash)
    values (
        v_at, p_actor, p_action, p_subject, coalesce(p_details, '{}'), v_prev,
        crypto.audit_hash(v_prev, v_at, p_actor, p_action, p_subject, coalesce(p_details, '{}'))
    )
    returning id into v_id;
    return v_id;
end
$$;

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

-- Who is acting, for the audit row: the signed-in user, else the database role.
create or replace function crypto.current_actor() returns text
language sql stable
set search_path = crypto, pg_temp
as $$ select coalesce('user:' || crypto.auth_uid()::text, 'role:' || session_user) $$;

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
            case
                when l.prev_hash is distinct from lag(l.hash) over (order by l.id)
                    then 'prev_hash is not the hash of the row before it'
                when l.hash <> crypto.audit_hash(l.prev_hash, l.at, l.actor, l.action, l.subject, l.details)
                    then 'the row does not match its hash'
            end as problem
        from crypto.audit_logs as l
    )
    select jsonb_build_object(
        'rows_checked', (select count(*) from checked),
        'ok', not exists (select from checked as c where c.problem is not null),
        'first_bad', (
            select jsonb_build_object('id', c.id, 'problem', c.problem)
            from checked as c where c.problem is not null order by c.id limit 1
        )
    )
$$;

grant execute on function crypto.audit_verify() to oxp_service, app_admin, auditor;
