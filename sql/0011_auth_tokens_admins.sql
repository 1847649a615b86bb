-- Refresh tokens: opaque to the client, stored here only as a hash. Each use
-- replaces the token with a new one of the same family; presenting a used
-- token again means it was stolen, and the whole family is revoked.
create table crypto.refresh_tokens (
    id bigint generated always as identity primary key,
    user_id uuid not null references crypto.users,
    family_id uuid not null,
    token_hash bytea not null unique check (length(token_hash) = 32),
    issued_at timestamptz not null,
    expires_at timestamptz not null,
    used_at timestamptz,
    revoked_at timestamptz,
    check (expires_at > issued_at)
);

create index refresh_tokens_by_family on crypto.refresh_tokens (family_id);

-- A TOTP code is good once: the last accepted time step per admin.
alter table crypto.users add column totp_last_step bigint;

-- Which worker last said it was alive, and when (GET /admin/health).
create table crypto.worker_heartbeats (
    worker text primary key,
    seen_at timestamptz not null,
    details jsonb not null default '{}'
);

-- Readable like every table, the token hashes aside.
grant select (id, user_id, family_id, issued_at, expires_at, used_at, revoked_at)
on crypto.refresh_tokens to auditor, oxp_service;
grant select on crypto.worker_heartbeats to auditor, oxp_service;
alter table crypto.refresh_tokens enable row level security;
alter table crypto.worker_heartbeats enable row level security;

-- A state that went through the callback, so a sign-in is bound to a flow
-- this service started.
alter table crypto.oauth_states add column completed_at timestamptz;
