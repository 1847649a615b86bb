-- The worker's vendor calls (plpgsql/rewards_vendor_calls.sql).
comment on function crypto.redemption_sending(bigint, bigint, integer, numeric) is
'Before a vendor call: marks that it may reach the vendor (no cancel refunds it from then on), checks the '
'worker still holds the job, stretches its claim over the call; returns the call''s number (oxp_service).';
comment on function crypto.redemption_not_sent(bigint, bigint, integer, integer, text) is
'The vendor call never left (no connection): by the attempt holding the job, its mark on a REQUESTED redemption '
'is taken back if it is the only one; audited (oxp_service).';
comment on function crypto.redemption_refused(bigint, bigint, integer, integer, text) is
'The vendor refused call N, told by the attempt holding the job: a refund if it is the only call that may have '
'reached the vendor, else UNKNOWN and a critical alert for an admin''s resolve (oxp_service).';
