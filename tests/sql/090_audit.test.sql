begin;
select plan(4);

select crypto.audit('test', 'test.first', 'a', '{"n": 1}') as first \gset
select crypto.audit('test', 'test.second', 'b', '{"n": 2}') as second \gset

select is(
    (select prev_hash from crypto.audit_logs where id = :second),
    (select hash from crypto.audit_logs where id = :first),
    'each row carries the previous row''s hash'
);
select is(
    (select hash from crypto.audit_logs where id = :second),
    (select crypto.audit_hash(prev_hash, at, actor, action, subject, details) from crypto.audit_logs where id = :second),
    'the hash covers the previous hash and the row''s content'
);
select isnt(
    crypto.audit_hash(null, now(), 'test', 'test.first', 'a', '{"n": 1}'),
    crypto.audit_hash(null, now(), 'test', 'test.first', 'a', '{"n": 2}'),
    'a changed detail changes the hash'
);
select throws_ok(
    format('delete from crypto.audit_logs where id = %s', :first), 'OX003', 'FORBIDDEN', 'audit rows cannot be deleted'
);

select * from finish();
rollback;
