-- Fewer index writes per point moved. Nothing looks entries up by their
-- transfer (the integrity check scans them all; pages join entries to
-- transfers by the transfer's key), so that index only cost each insert.
drop index crypto.ledger_entries_by_transfer;

-- Room on each page for a new version of the row: a balance update stays a
-- heap-only (HOT) update and writes no index.
alter table crypto.ledger_accounts set (fillfactor = 70);
