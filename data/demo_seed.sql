-- Demo data for `make run` (never a migration): rewards and ads to play with.
insert into crypto.rewards_inventory (sku, name, cost_points, stock) values
('COFFEE-S', 'Coffee voucher (small)', 300, 50),
('MOVIE-1', 'Movie ticket', 1200, 10),
('GIFT-10', 'Gift card 10 USD', 2500, 5)
on conflict (sku) do nothing;

insert into crypto.ads (id, title, reward_kind, reward_points) values
('demo-slot', 'Watch a 15-second clip for one more prediction', 'SLOT', 0),
('demo-points', 'Watch a 30-second clip for 20 points', 'POINTS', 20)
on conflict (id) do nothing;
