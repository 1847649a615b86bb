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
