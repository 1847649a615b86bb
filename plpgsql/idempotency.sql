-- Idempotency-Key for API writes: the first response is stored with a hash
-- of the request; a retry with the same key and request gets it back and
-- changes nothing, the same key with another request is refused.
create or replace function crypto.idempotency_replay(p_scope text, p_key text, p_request_hash text)
returns jsonb
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_stored crypto.idempotent_requests;
begin
    if p_key is null then
        return null;
    end if;
    if length(p_key) not between 1 and 200 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Idempotency-Key has 1 to 200 characters';
    end if;
    -- Two retries racing with one key: the second waits for the first.
    perform pg_advisory_xact_lock(hashtext('crypto.idempotency'), hashtext(p_scope || ':' || p_key));
    select * into v_stored from crypto.idempotent_requests as r where r.scope = p_scope and r.key = p_key;
    if not found then
        return null;
    end if;
    if v_stored.request_hash <> p_request_hash then
        raise exception using errcode = 'OX007', message = 'IDEMPOTENCY_KEY_REUSED',
            detail = 'This Idempotency-Key was used for another request';
    end if;
    return v_stored.response;
end
$$;

create or replace function crypto.idempotency_store(
    p_scope text, p_key text, p_request_hash text, p_response jsonb
) returns jsonb
language sql volatile
set search_path = crypto, pg_temp
as $$
    insert into crypto.idempotent_requests (scope, key, request_hash, response, created_at)
    select p_scope, p_key, p_request_hash, p_response, crypto.now()
    where p_key is not null;
    select p_response;
$$;

-- A refusal raised inside a keyed request: stored under the key (and
-- returned, as crypto.problem) when its SQLSTATE is one the key remembers
-- (crypto.error_codes.remembered_by_idempotency_key), else null and nothing
-- is stored: the caller raises it again. The caller catches the refusal in
-- a block of its own, so whatever the attempt wrote is undone and only the
-- answer is kept.
create or replace function crypto.idempotency_refusal(
    p_scope text, p_key text, p_request_hash text, p_sqlstate text, p_detail text
) returns jsonb
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
begin
    if p_key is null or not exists (
        select from crypto.error_codes as e where e.sqlstate = p_sqlstate and e.remembered_by_idempotency_key
    ) then
        return null;
    end if;
    return crypto.idempotency_store(p_scope, p_key, p_request_hash, crypto.problem(p_sqlstate, p_detail));
end
$$;

-- A route that spends or pays refuses to run without a key: without one, a
-- double click spends twice. p_max keeps the ledger key built from it (the
-- route's prefix, the user, the key) within its 200 characters.
create or replace function crypto.require_idempotency_key(p_key text, p_what text, p_max integer) returns text
language plpgsql immutable
set search_path = crypto, pg_temp
as $$
begin
    if p_key is null or length(p_key) not between 1 and p_max then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('%s needs an Idempotency-Key header of 1 to %s characters', p_what, p_max);
    end if;
    return p_key;
end
$$;
