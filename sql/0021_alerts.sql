-- Alerts that reach a person (issue 11, item 4): one row per condition
-- while it lasts, not a row per check; each opening, escalation and
-- resolution is delivered once to the webhooks by the worker.
create type crypto.alert_severity as enum ('warning', 'critical');

create table crypto.alerts (
    id bigint generated always as identity primary key,
    rule text not null check (rule ~ '^[a-z_]+$'),
    -- What the condition is about within its rule (a day, a job, a user
    -- id); '' when the rule has one subject.
    subject text not null default '',
    severity crypto.alert_severity not null,
    first_seen timestamptz not null,
    last_seen timestamptz not null,
    resolved_at timestamptz,
    -- 'cleared' when the condition went away, else a person's reason.
    resolution text,
    resolved_by text,
    details jsonb not null default '{}',
    check (last_seen >= first_seen),
    check ((resolved_at is null) = (resolution is null))
);

-- Deduplicated while open: a condition seen again touches its row.
create unique index alerts_open_once on crypto.alerts (rule, subject) where resolved_at is null;
create index alerts_recent on crypto.alerts (first_seen desc);

-- Which webhook got which transition of which alert (by the SHA-256 of
-- its URL: a Slack URL is a secret), so a retry sends only what is left.
create table crypto.alert_deliveries (
    alert_id bigint not null references crypto.alerts,
    transition text not null check (transition in ('opened', 'escalated', 'resolved')),
    target_hash text not null check (target_hash ~ '^[0-9a-f]{64}$'),
    delivered_at timestamptz not null,
    primary key (alert_id, transition, target_hash)
);

alter table crypto.alerts enable row level security;
alter table crypto.alert_deliveries enable row level security;
grant select on crypto.alerts, crypto.alert_deliveries to auditor;

-- What the API answered, per minute, as its processes report it: the
-- 5xx-rate alert reads this (UNLOGGED: a crash loses a few minutes of it).
create unlogged table crypto.http_counts (
    minute timestamptz primary key,
    total bigint not null check (total >= 0),
    errors bigint not null check (errors >= 0 and errors <= total)
);
alter table crypto.http_counts enable row level security;
grant select on crypto.http_counts to auditor;

-- The queue's unfinished jobs, which the alert rules, the dashboard and
-- the scrape count every minute, while done ones pile up for good.
create index jobs_unfinished on crypto.jobs (status, kind) where status in ('queued', 'running', 'dead');
