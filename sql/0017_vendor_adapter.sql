-- Rewards through a real vendor (issue 9, item 11).
--
-- A vendor call that timed out, or lost its connection after the request
-- went out, may have issued the voucher: the redemption is UNKNOWN, neither
-- issued nor failed. The unit stays reserved and the points stay spent; the
-- worker asks the vendor again with the same idempotency key, and only the
-- vendor's answer or an admin (oxp rewards resolve) ends it. Cancelling it
-- is refused: a refund of a voucher the user also got is a doubled reward.
-- (Added here, used only by the functions in plpgsql/, applied after this
-- transaction commits: a new enum value cannot be used in the transaction
-- that adds it.)
alter type crypto.redemption_status add value if not exists 'UNKNOWN' after 'REQUESTED';

-- The vendor's reference is the voucher itself (a code the user redeems at
-- the shop): a secret of the user's. The auditor reads every other column
-- of a redemption; the audit log keeps its SHA-256 only (crypto.redemption_issued).
revoke select on crypto.rewards_redemptions from auditor;
grant select (
    id, user_id, sku, cost_points, status, idempotency_key, debit_transfer_id, refund_transfer_id,
    error, created_at, updated_at
) on crypto.rewards_redemptions to auditor;
