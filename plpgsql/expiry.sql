-- What sign-in leaves behind grows with every visitor; pg_cron deletes it
-- once it can matter no more (auth.* windows) and a grace period for
-- investigations has passed (retention.expired_days, 30 by default).
create or replace function crypto.expire_auth_rows() returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_before timestamptz := crypto.now() - crypto.setting_interval('retention.expired_days');
    v_states integer;
    v_tokens integer;
    v_links integer;
    v_requests integer;
    v_failures integer;
begin
    delete from crypto.oauth_states as s where s.expires_at < v_before;
    get diagnostics v_states = row_count;
    -- A family goes whole, once it ended (revoked, expired, or at its end):
    -- while any token of it lives, its spent tokens catch a replay.
    delete from crypto.refresh_tokens as t
    where t.family_id in (
        select f.family_id from crypto.refresh_tokens as f
        group by f.family_id
        having least(min(f.revoked_at), max(f.expires_at), min(f.family_expires_at)) < v_before
    );
    get diagnostics v_tokens = row_count;
    delete from crypto.email_verifications as e where e.expires_at < v_before;
    get diagnostics v_links = row_count;
    delete from crypto.idempotent_requests as r where r.created_at < v_before;
    get diagnostics v_requests = row_count;
    -- Failures count for minutes (auth.*_window_minutes); a day is plenty.
    delete from crypto.auth_failures as f where f.at < crypto.now() - interval '1 day';
    get diagnostics v_failures = row_count;
    return json_build_object('oauth_states', v_states, 'refresh_tokens', v_tokens, 'email_verifications', v_links,
        'idempotent_requests', v_requests, 'auth_failures', v_failures);
end
$$;

grant execute on function crypto.expire_auth_rows() to oxp_service;
