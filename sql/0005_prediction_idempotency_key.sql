-- api.submit_prediction takes an Idempotency-Key (plpgsql/submit_prediction.sql).
drop function if exists api.submit_prediction(text, text);
