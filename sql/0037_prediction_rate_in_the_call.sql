-- The per-user prediction limits are a rule of crypto.place_prediction
-- (crypto.prediction_rate, plpgsql/rate_limit.sql), no longer the gate's:
-- an API of this release names no 'predictions' kind to the gate. Only
-- repeatable files change for it; this version marks it, so that such an
-- API is not ready (GET /ready lists the versions it needs) against a
-- database whose place_prediction does not check them yet: rolled before
-- migrate, nothing would limit a player's predictions.
comment on table crypto.rate_limits is
'Rate-limit counts by bucket and window: per IP (a row per database session, summed), point reads and accepted '
'predictions per user. The gate counts IPs and point reads; crypto.place_prediction checks and counts predictions.';
