-- A vendor call that may have reached the vendor marks its redemption
-- first (crypto.redemption_sending, committed before the call): a worker
-- killed after the vendor made a voucher, before it was recorded, leaves
-- the mark, and from then on neither a cancel nor a later attempt's refusal
-- may refund it (the first call's voucher may exist). Only the vendor's
-- answer for it, or an admin's resolve, ends it.
--   sent_at       when the first call that may have reached the vendor began
--                 (null: no call may have reached it);
--   vendor_calls  how many calls were begun (each call's number is its token);
--   sent_call     the number of the first call that may have reached it.
alter table crypto.rewards_redemptions
add column sent_at timestamptz,
add column vendor_calls integer not null default 0 check (vendor_calls >= 0),
add column sent_call integer check (sent_call > 0),
add constraint rewards_redemptions_sent_check check ((sent_at is null) = (sent_call is null));

-- A worker stretches its claim over the vendor call it is about to make
-- (its own timeouts plus a margin): a job is taken again only after both
-- the lease and this have ended, so jobs.lease_seconds set below a vendor
-- call can no longer let a second worker retake a live call.
alter table crypto.jobs add column lease_until timestamptz;

-- A voucher the vendor made for a redemption that is final without it
-- (cancelled, failed and refunded, or issued with another voucher): kept,
-- never dropped, for a person to void at the vendor or to give the user.
-- The reference is a secret: the auditor reads neither this table nor it.
create table crypto.orphan_vouchers (
    id bigint generated always as identity primary key,
    redemption_id bigint not null references crypto.rewards_redemptions,
    vendor_ref text not null check (length(vendor_ref) between 1 and 200),
    redemption_status crypto.redemption_status not null,
    received_at timestamptz not null,
    unique (redemption_id, vendor_ref)
);
alter table crypto.orphan_vouchers enable row level security;
grant select (id, redemption_id, redemption_status, received_at) on crypto.orphan_vouchers to auditor;
-- The operator resolves an orphan_voucher alert (voids the voucher at the
-- vendor, or gives it to the user): it reads the reference, the alert's
-- masked one being no use. No one else does (oxp_service neither).
grant select on crypto.orphan_vouchers to oxp_operator;
grant select (sent_at, vendor_calls, sent_call) on crypto.rewards_redemptions to auditor;

-- Rows from before the mark: a call may have reached the vendor for every
-- UNKNOWN redemption, and for a REQUESTED one whose vendor call was tried
-- (attempts > 0) or is running now. They get the mark of one call, begun
-- when the row last changed, so no cancel refunds them (the safe side:
-- only the vendor's answer or an admin's resolve ends them).
update crypto.rewards_redemptions as r
set sent_at = r.updated_at, sent_call = 1, vendor_calls = 1
where r.sent_at is null and (r.status = 'UNKNOWN' or (r.status = 'REQUESTED' and exists (
    select from crypto.jobs as j
    where j.dedupe_key = 'reward.issue:' || r.id and (j.attempts > 0 or j.status = 'running')
)));

-- The worker no longer reads a redemption before a call: the mark
-- (crypto.redemption_sending) returns it, and checks its claim.
drop function if exists crypto.redemption_to_issue(bigint);
-- The worker's answers now carry its claim (job id, attempt): checked, so
-- oxp_operator (a member of oxp_service) cannot answer for a call by hand.
drop function if exists crypto.redemption_not_sent(bigint, integer, text);
drop function if exists crypto.redemption_refused(bigint, integer, text);
