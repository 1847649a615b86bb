-- GET /v1/leaderboard in pages: the cursor is a keyset, sealed (it shows no
-- player's id and cannot be forged or changed), ties are
-- broken by a fixed order (points, wins, then the player's id, all
-- descending), the pages join into the whole board without a repeat or a
-- gap, even when the board is refreshed between two pages; accuracy shows
-- from leaderboard.min_decided decided predictions on, and never moves a
-- player up or down.
begin;
select plan(34);

select tests.load_calendar();
select crypto.clock_set('2026-11-25 20:00Z');  -- a Wednesday in New York: the week of 23 Nov

-- The board's rows as the rollup leaves them (190_leaderboard tests the
-- rollup): fixed ids, so the order of the ties is known.
insert into crypto.users (id, email, password_hash, nickname)
select ('00000000-0000-0000-0000-00000000000' || n)::uuid, lower(n) || '@example.com', '$argon2id$x', 'P' || n
from unnest(array['A', 'B', 'C', 'D', 'E', 'F', '9']) as n;
insert into crypto.leaderboard (period, period_start, user_id, points, wins, losses, voids, refreshed_at)
select 'week', '2026-11-23', ('00000000-0000-0000-0000-00000000000' || n)::uuid, p, w, l, 0, now()
from (values
    ('A', 300, 3, 1),   -- first
    ('B', 200, 2, 1),   -- B, C, D tie on points and wins: D, C, B (ids descending)
    ('C', 200, 2, 0),
    ('D', 200, 2, 5),
    ('E', 200, 1, 0),   -- the same points, fewer wins: after them
    ('F', 100, 1, 9),
    ('9', 0, 0, 0)
) as v (n, p, w, l);
update crypto.settings set value = '3' where key = 'leaderboard.min_decided';

set local role anon;  -- the board is public
create temporary table pages (page integer, rank integer, nickname text, accuracy numeric) on commit drop;
create temporary table cursors (cursor text) on commit drop;
create function pg_temp.walk(p_limit integer) returns integer
language plpgsql as $$
declare
    v_cursor text;
    v_page json;
    v_n integer := 0;
begin
    delete from pages;
    loop
        v_page := api.leaderboard('week', p_limit, v_cursor);
        v_n := v_n + 1;
        insert into pages
        select v_n, (i ->> 'rank')::integer, i ->> 'nickname', (i ->> 'accuracy')::numeric
        from json_array_elements(v_page -> 'items') as i;
        v_cursor := v_page ->> 'next_cursor';
        insert into cursors select v_cursor where v_cursor is not null;
        exit when v_cursor is null or v_n > 20;
    end loop;
    return v_n;
end
$$;

select is(pg_temp.walk(2), 4, 'seven players in pages of two: four pages, the last without a next_cursor');
select results_eq(
    'select rank, nickname from pages order by rank',
    $$ values (1, 'PA'), (2, 'PD'), (3, 'PC'), (4, 'PB'), (5, 'PE'), (6, 'PF'), (7, 'P9') $$,
    'the pages join into the board: ties D, C, B by id, each once, ranks without a gap'
);
select results_eq(
    'select page, nickname from pages where nickname in (''PD'', ''PC'', ''PB'') order by rank',
    $$ values (1, 'PD'), (2, 'PC'), (2, 'PB') $$,
    'the tie D, C, B is cut by a page boundary and goes on after D'
);
select results_eq(
    $$ select (i ->> 'rank')::integer, i ->> 'nickname' from json_array_elements(api.leaderboard('week', 100) -> 'items') as i $$,
    'select rank, nickname from pages order by rank',
    'one page of 100 is the same board'
);
select is(pg_temp.walk(7), 1, 'a page exactly as long as the board has no next page');
select is(pg_temp.walk(1), 7, 'pages of one: seven');
select is((select count(distinct nickname)::integer from pages), 7, '... each player once');

-- The accuracy rule: wins / decided from 3 decided predictions on (B has
-- exactly 3, C only 2); it is shown, it does not rank.
select results_eq(
    'select nickname, accuracy from pages order by rank',
    $$ values ('PA', 0.7500), ('PD', 0.2857), ('PC', null), ('PB', 0.6667), ('PE', null), ('PF', 0.1000), ('P9', null) $$,
    'accuracy from the minimum of decided predictions on (B at exactly 3), null below; the rank ignores it'
);

-- A refresh between two pages: a player below the cursor climbs to the top.
-- The next page goes on after the last row shown: no one repeated, and the
-- climber, already above the cursor, is not shown twice.
select api.leaderboard('week', 2) ->> 'next_cursor' as after_d \gset
reset role;
update crypto.leaderboard set points = 1000 where user_id = '00000000-0000-0000-0000-00000000000F';
set local role anon;
select is(
    (select json_agg(i ->> 'nickname') from json_array_elements(api.leaderboard('week', 10, :'after_d') -> 'items') as i)::text,
    '["PC", "PB", "PE", "P9"]', 'after a refresh the next page goes on after D, without a repeat'
);
select is(api.leaderboard('week', 2, :'after_d') #>> '{items,0,rank}', '3', 'ranks go on from the cursor''s');

-- A cursor pins its week: on the next Monday the rest of that week's board.
reset role;
select crypto.clock_set('2026-11-30 20:00Z');
set local role anon;
select is(api.leaderboard('week', 2) ->> 'items', '[]', 'the new week has no board yet ...');
select is(api.leaderboard('week', 2, :'after_d') ->> 'period_start', '2026-11-23',
    '... and the cursor goes on through its own week');

-- Bad cursors: a clear error, never a page.
select throws_ok($$ select api.leaderboard('week', 2, 'not a cursor!') $$, 'OX000', null, 'garbage is refused');
select throws_ok($$ select api.leaderboard('week', 2, '2') $$, 'OX000', null, 'an offset is no longer a cursor');
select throws_ok(
    format($$ select api.leaderboard('week', 2, %L) $$,
        rtrim(translate(encode(convert_to('week|2026-11-23|2|200|2|x', 'UTF8'), 'base64'), '+/', '-_'), '=')),
    'OX000', null, 'a well-encoded string that is not a key is refused'
);
select throws_ok(format($$ select api.leaderboard('month', 2, %L) $$, :'after_d'), 'OX000', null,
    'a cursor of the week does not page the month');

-- Privacy: every cursor given above (pages of one, two and seven), decoded
-- from base64url, holds no player's id in any form (text, hex, bytes), nor
-- the key it pages after in clear.
reset role;
create function pg_temp.raw(p_cursor text) returns bytea
language sql immutable as $$
    select decode(rpad(translate(p_cursor, '-_', '+/'), (length(p_cursor) + 3) / 4 * 4, '='), 'base64')
$$;
select is((select row(count(*), count(distinct cursor))::text from cursors), '(9,6)',
    'the walks gave nine cursors, six distinct: the same key always seals alike');
select is_empty(
    $$ select c.cursor, u.id from cursors as c cross join crypto.users as u
       where encode(pg_temp.raw(c.cursor), 'hex') like '%' || replace(u.id::text, '-', '') || '%'
           or encode(pg_temp.raw(c.cursor), 'escape') ilike '%' || u.id::text || '%'
           or encode(pg_temp.raw(c.cursor), 'escape') ilike '%' || replace(u.id::text, '-', '') || '%' $$,
    'no cursor holds the id of any player, decoded'
);
select is_empty(
    $$ select c.cursor from cursors as c
       where encode(pg_temp.raw(c.cursor), 'escape') ~ '(week[|]|2026-11-23)' $$,
    '... nor its period or week in clear: the whole key is sealed'
);

-- Forgery: a cursor changed in one character, cut short, lengthened, or
-- the plain key an earlier version gave (readable, so forgeable) is refused.
select throws_ok(
    format($$ select api.leaderboard('week', 2, %L) $$,
        overlay(:'after_d' placing case when substr(:'after_d', 30, 1) = 'A' then 'B' else 'A' end from 30 for 1)),
    'OX000', 'VALIDATION_FAILED', 'a cursor changed in one character is refused'
);
select throws_ok(format($$ select api.leaderboard('week', 2, %L) $$, left(:'after_d', -4)), 'OX000',
    'VALIDATION_FAILED', 'a cursor cut short is refused');
select throws_ok(
    format($$ select api.leaderboard('week', 2, %L) $$,
        rtrim(translate(encode(pg_temp.raw(:'after_d') || '\x00000000000000000000000000000000'::bytea, 'base64'),
            E'+/\n', '-_'), '=')),
    'OX000', 'VALIDATION_FAILED', 'a cursor with one block more is refused');
select throws_ok(
    format($$ select api.leaderboard('week', 2, %L) $$,
        rtrim(translate(encode(convert_to('week|2026-11-23|2|200|2|00000000-0000-0000-0000-00000000000d', 'UTF8'),
            'base64'), E'+/\n', '-_'), '=')),
    'OX000', 'VALIDATION_FAILED', 'the plain key an earlier version gave is refused (forged: rank 2 after D)'
);
select is(
    (select json_agg(i ->> 'nickname') from json_array_elements(api.leaderboard('week', 10, :'after_d') -> 'items') as i)::text,
    '["PC", "PB", "PE", "P9"]', 'the cursor as it came still pages (nothing above changed it)'
);
-- One cursor, one text: base64 leaves unused low bits in the last
-- character (here 80 bytes, 2 bits), which decode ignores; a cursor
-- spelled with them set decodes to the same bytes and is still refused.
create function pg_temp.respell(p_cursor text) returns text
language sql immutable as $$
    select left(p_cursor, -1) || substr(a, ((strpos(a, right(p_cursor, 1)) - 1) | 1) + 1, 1)
    from (select 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'::text as a) as x
$$;
select ok(
    pg_temp.respell(:'after_d') <> :'after_d' and pg_temp.raw(pg_temp.respell(:'after_d')) = pg_temp.raw(:'after_d'),
    'a cursor respelled in its last character''s unused bits decodes to the same bytes ...'
);
select throws_ok(format($$ select api.leaderboard('week', 2, %L) $$, pg_temp.respell(:'after_d')),
    'OX000', 'VALIDATION_FAILED', '... and is refused');

-- No padding oracle: the padding is checked with the tag, not before it.
-- Sealed here with the database's own keys (read as the owner), a tag
-- over what the padding leaves: good padding opens, bad padding (wrong
-- bytes, a length of 0 or above 16) does not, whatever the tag.
create function pg_temp.sealed(p_tagged bytea, p_blocks bytea) returns text
language sql stable as $$
    select rtrim(translate(encode(x.iv || ext.encrypt_iv(p_blocks, k.enc_key, x.iv, 'aes-cbc/pad:none'), 'base64'),
        E'+/\n', '-_'), '=')
    from crypto.cursor_keys('leaderboard') as k,
        lateral (select substr(ext.hmac(p_tagged, k.mac_key, 'sha256'), 1, 16) as iv) as x
$$;
select convert_to('week|2026-11-23|2|200|2|00000000-0000-0000-0000-00000000000d', 'UTF8') as key60 \gset
select is(crypto.cursor_open('leaderboard', pg_temp.sealed(:'key60'::bytea, :'key60'::bytea || '\x04040404'::bytea)),
    convert_from(:'key60'::bytea, 'UTF8'), 'a cursor sealed with good padding opens (the sealing here is right) ...');
select is(crypto.cursor_open('leaderboard', pg_temp.sealed(:'key60'::bytea, :'key60'::bytea || '\x01020304'::bytea)),
    null, '... with a good tag but padding of the wrong bytes, it does not');
select is(crypto.cursor_open('leaderboard',
    pg_temp.sealed(:'key60'::bytea || '\x000000'::bytea, :'key60'::bytea || '\x00000000'::bytea)),
    null, '... nor with a padding length of 0');
select is(crypto.cursor_open('leaderboard',
    pg_temp.sealed(substr(:'key60'::bytea, 1, 48), :'key60'::bytea || '\x20202020'::bytea)),
    null, '... nor above 16');
-- A cursor sealed under another key (a copy of the database's, a key
-- replaced since): refused; the board pages again from its first page.
update crypto.server_secrets set secret = ext.gen_random_bytes(32) where name = 'cursor';
select crypto.clock_set('2026-11-25 20:00Z');  -- back in the week of the board
select throws_ok(format($$ select api.leaderboard('week', 10, %L) $$, :'after_d'), 'OX000', 'VALIDATION_FAILED',
    'a cursor of another key is refused');
select is(
    json_array_length(api.leaderboard('week', 10, api.leaderboard('week', 2) ->> 'next_cursor') -> 'items'), 5,
    '... and a cursor of the new key pages: the five after F (now first) and A'
);

-- Who may NOT: the key is read by no role (the auditor neither), and the
-- sealing functions run for none (only inside the owner's board function).
select is_empty(
    $$ select r.rolname from pg_roles as r
       where r.rolname in ('anon', 'app_user', 'app_admin', 'auth_service', 'ad_network', 'oxp_service',
               'oxp_operator', 'auditor', 'authenticator', 'admin_authenticator')
           and (has_table_privilege(r.rolname, 'crypto.server_secrets', 'select, insert, update, delete')
               or has_function_privilege(r.rolname, 'crypto.cursor_open(text, text)', 'execute')
               or has_function_privilege(r.rolname, 'crypto.cursor_seal(text, text)', 'execute')
               or has_function_privilege(r.rolname, 'crypto.cursor_keys(text)', 'execute')) $$,
    'no role reads the cursor key or seals or opens a cursor'
);
set local role auditor;
select throws_ok('select secret from crypto.server_secrets', '42501', null, 'the auditor reads no secret');
reset role;

select * from finish();
rollback;
