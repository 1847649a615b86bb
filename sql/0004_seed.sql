-- System accounts of the double-entry ledger: every user credit is a debit here.
insert into crypto.ledger_accounts (kind, code) values
('system', 'issuance'),
('system', 'ads'),
('system', 'redemptions'),
('system', 'adjustments');
