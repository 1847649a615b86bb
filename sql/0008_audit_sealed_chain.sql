-- The audit chain is sealed after commit instead of inside each writer's
-- transaction: a writer only appends its row, and crypto.audit_seal (pg_cron,
-- every minute) links the committed rows in order. Holding one chain lock
-- from each audited write to its commit had made every points movement in
-- the database wait for the one before it.
alter table crypto.audit_logs
alter column hash drop not null,
add column txid xid8 not null default pg_current_xact_id(),
add column seq bigint unique;

-- Rows written so far were chained in id order: that is their sealed order.
alter table crypto.audit_logs disable trigger user;
update crypto.audit_logs as l set seq = o.n
from (
    select
        a.id,
        row_number() over (order by a.id) as n
    from crypto.audit_logs as a
) as o
where o.id = l.id;
alter table crypto.audit_logs enable trigger user;

alter table crypto.audit_logs
add constraint audit_logs_sealed_whole check ((seq is null) = (hash is null));

create index audit_logs_pending on crypto.audit_logs (id) where seq is null;

-- crypto.audit no longer needs a lock; same signature, new body (plpgsql/audit.sql).
