// The admin console: sign-in with password and one-time code; the day at a
// glance with charts of the daily metrics in plain SVG; the rewards
// inventory, ads, settings, manual settlement, end-of-day prices, batches,
// universe and audit search. Every screen calls the admin API (the same
// SQL functions as `oxp`); no rule of the game lives here. Text from the
// API is set with textContent only.
import { api, Problem, setTokens } from './api.js';
import { problemMessage } from './i18n.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const TABS = ['dashboard', 'rewards', 'ads', 'settings', 'operations', 'universe', 'audit'];
const BATCHES = ['schedule-tick', 'metrics-rollup', 'evaluate-alerts', 'integrity-check', 'calendar-runway', 'audit-seal'];

let today = null; // the latest session's trading day, from the dashboard

function say(text, isError = false) {
  const box = $('message');
  box.textContent = text;
  box.className = isError ? 'error' : '';
  box.hidden = !text;
}

// The problem in words, then its code and the server's detail: an
// operator wants both.
function fail(error) {
  if (error instanceof Problem) {
    const detail = error.detail ? `: ${error.detail}` : '';
    say(`${problemMessage(error, 'en')} [${error.code}${detail}]`, true);
  } else {
    say(String(error), true);
  }
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === true) node.setAttribute(k, '');
    else if (v !== false && v != null) node.setAttribute(k, String(v));
  }
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text != null) node.textContent = String(text);
  return node;
}

// The API's KST timestamps ("2026-11-25T07:00:00+09:00") as people read them.
function kst(iso) {
  if (!iso) return '—';
  return String(iso).replace('T', ' ').replace(/(\.\d+)?\+09:00$/, ' KST');
}

// An answer as "key: value" lines; lists of closes as counts per day.
function show(box, value) {
  const lines = Object.entries(value).map(([key, v]) => {
    if (Array.isArray(v) && v.every((x) => x && x.symbol && x.trading_day)) {
      const days = new Map();
      for (const x of v) days.set(x.trading_day, [...(days.get(x.trading_day) || []), x.symbol]);
      const parts = [...days].map(([day, symbols]) => `${day}: ${symbols.join(' ')}`);
      return `${key}: ${v.length ? parts.join('; ') : 'none'}`;
    }
    return `${key}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`;
  });
  box.textContent = lines.join('\n');
  box.hidden = false;
}

// Bars per day, one colour per series side by side; a line of labels below.
function bars(target, days, series, max = null) {
  // Drawn at the size it is shown, so its labels keep their size on a phone.
  const width = Math.max(280, Math.round(target.getBoundingClientRect().width) || 600);
  const height = 160;
  const bottom = 20;
  const top = 18;
  target.setAttribute('viewBox', `0 0 ${width} ${height}`);
  target.replaceChildren();
  const peak = max ?? Math.max(1, ...series.flatMap((s) => s.values.map((v) => Number(v) || 0)));
  const slot = width / Math.max(days.length, 1);
  const bar = Math.max(2, (slot * 0.8) / series.length);
  series.forEach((s, j) => {
    target.append(svg('rect', { x: 4 + j * 90, y: 3, width: 9, height: 9, fill: s.color }));
    target.append(svg('text', { x: 17 + j * 90, y: 11 }, s.name));
    s.values.forEach((value, i) => {
      const v = Number(value) || 0;
      const h = ((height - bottom - top) * v) / peak;
      const rect = svg('rect', {
        x: i * slot + slot * 0.1 + j * bar,
        y: height - bottom - h,
        width: bar,
        height: h,
        fill: s.color,
        'data-day': days[i],
        'data-value': v,
      });
      rect.append(svg('title', {}, `${days[i]} ${s.name}: ${v}`));
      target.append(rect);
    });
  });
  target.append(svg('text', { x: width - 4, y: 11, 'text-anchor': 'end' }, `max ${peak}`));
  days.forEach((day, i) => {
    if (days.length <= 10 || i % Math.ceil(days.length / 10) === 0) {
      target.append(svg('text', { x: i * slot + 2, y: height - 6 }, day.slice(5)));
    }
  });
  if (!days.length) target.append(svg('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle' }, 'no data yet'));
}

function figure(list, name, value) {
  list.append(el('dt', name), el('dd', value ?? '—'));
}

// --- tabs ------------------------------------------------------------------

function showTab(tab) {
  const current = TABS.includes(tab) ? tab : 'dashboard';
  for (const name of TABS) $(name).hidden = name !== current;
  for (const button of document.querySelectorAll('#tabs button')) {
    if (button.dataset.tab === current) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  const load = {
    dashboard: loadDashboard,
    rewards: loadInventory,
    ads: loadAds,
    settings: loadSettings,
    operations: loadBatches,
    universe: async () => {},
    audit: () => loadAudit($('audit-form').audit_action.value.trim()),
  };
  return load[current]().catch(fail);
}

// --- dashboard -------------------------------------------------------------

async function loadDashboard() {
  const d = await api('/admin/dashboard');
  const list = $('figures');
  list.replaceChildren();
  figure(list, 'Now', kst(d.now));
  if (d.session) {
    figure(list, 'Trading day', `${d.session.trading_day} (${d.session.phase})`);
    figure(list, 'Participants', `${d.session.participants ?? 0} of ${d.session.active_users ?? 0} active`);
    figure(list, 'Predictions', d.session.predictions ?? 0);
  }
  if (d.points) {
    figure(list, 'Points issued', d.points.issued);
    figure(list, 'Points redeemed', d.points.redeemed);
    figure(list, 'Held by players', d.points.held_by_players);
  }
  const queue = Object.entries(d.queue || {}).map(([status, n]) => `${n} ${status}`);
  figure(list, 'Queue', queue.length ? queue.join(', ') : 'empty');
  figure(list, 'Worker last seen', kst(d.worker_last_seen));
  const alerts = $('alerts');
  alerts.replaceChildren();
  for (const a of d.alerts || []) alerts.append(el('li', `${a.severity} · ${a.rule} · ${a.subject ?? ''} · since ${kst(a.first_seen)}`));
  if (!alerts.children.length) alerts.append(el('li', 'No open alerts', { class: 'small' }));
  const jobs = $('jobs');
  jobs.replaceChildren();
  for (const j of d.last_runs || []) {
    const item = el('li', null, { 'data-job': j.job });
    item.append(
      el('div', `${j.job} · ${j.status}`, { class: j.status === 'failed' ? 'loss' : '' }),
      el('div', `${kst(j.started_at)}${j.error ? ` · ${j.error}` : ''}`, { class: 'small' }),
    );
    jobs.append(item);
  }
  if (!jobs.children.length) jobs.append(el('li', 'No job has run yet', { class: 'small' }));
  today = (d.session && d.session.trading_day) || d.now.slice(0, 10);
  for (const form of ['universe-form', 'settle-form', 'eod-form']) $(form).trading_day.value ||= today;
  const from = new Date(Date.parse(today) - 60 * 86400000).toISOString().slice(0, 10);
  await loadCharts(from, today);
}

async function loadCharts(from, to) {
  const { items } = await api(`/v1/metrics/daily?from=${from}&to=${to}`);
  const days = items.map((m) => m.trading_day);
  bars($('chart-participants'), days, [
    { name: 'active', values: items.map((m) => m.active_users), color: '#93c5fd' },
    { name: 'predicted', values: items.map((m) => m.participants), color: '#1d4ed8' },
  ]);
  bars($('chart-winrate'), days, [{ name: 'win rate', values: items.map((m) => m.win_rate ?? 0), color: '#16a34a' }], 1);
  const issued = (m) => m.points_issued.settlement + m.points_issued.ads + m.points_issued.adjustments;
  bars($('chart-points'), days, [
    { name: 'issued', values: items.map(issued), color: '#1d4ed8' },
    { name: 'spent', values: items.map((m) => m.points_spent.redemptions - m.points_spent.refunds), color: '#dc2626' },
  ]);
  bars($('chart-redemptions'), days, [{ name: 'redemptions', values: items.map((m) => m.redemptions ?? 0), color: '#9333ea' }]);
}

// --- rewards inventory ----------------------------------------------------------

async function loadInventory() {
  const { items } = await api('/v1/rewards');
  const list = $('inventory');
  list.replaceChildren();
  for (const r of items) {
    const item = el('li', null, { 'data-sku': r.sku });
    const head = el('div', null, { class: 'line' });
    head.append(el('strong', `${r.sku} · ${r.name}`), el('span', `${r.cost_points} points`));
    item.append(
      head,
      el('div', `stock ${r.stock} · available ${r.available} · reserved ${r.reserved} · issued ${r.issued}`, { class: 'small' }),
    );
    const edit = el('button', 'Edit', { type: 'button', class: 'link' });
    edit.addEventListener('click', () => {
      const f = $('inventory-form');
      f.sku.value = r.sku;
      f.name.value = r.name;
      f.cost_points.value = r.cost_points;
      f.stock.value = r.stock;
      f.active.value = '';
      f.name.focus();
    });
    item.append(edit);
    list.append(item);
  }
  if (!list.children.length) list.append(el('li', 'No active reward', { class: 'small' }));
}

function numberOrNull(input) {
  const text = input.value.trim();
  return text === '' ? null : Number(text);
}

async function saveInventory(event) {
  event.preventDefault();
  const f = event.target;
  const body = {
    sku: f.sku.value.trim(),
    name: f.name.value.trim() || null,
    cost_points: numberOrNull(f.cost_points),
    stock: numberOrNull(f.stock),
    active: f.active.value === '' ? null : f.active.value === 'true',
  };
  try {
    const r = await api('/admin/rewards/inventory', { method: 'POST', body });
    f.reset();
    await loadInventory();
    say(`Reward ${r.sku}: ${r.name}, ${r.cost_points} points, stock ${r.stock}, ${r.active ? 'active' : 'inactive'}`);
  } catch (error) {
    fail(error);
  }
}

// --- ads ----------------------------------------------------------------------------

let knownAds = new Set();

async function loadAds() {
  const [{ items }, settings] = await Promise.all([api('/v1/ads'), api('/admin/settings')]);
  const cap = (key) => (settings.find((x) => x.key === key) || {}).value ?? '—';
  $('ad-caps').textContent =
    `Caps per player and session (Settings): ${cap('ads.max_slot_unlocks')} slot unlocks, ` +
    `${cap('ads.max_point_rewards')} point rewards, ${cap('ads.max_impressions')} ads shown.`;
  knownAds = new Set(items.map((a) => a.id));
  const list = $('ad-list');
  list.replaceChildren();
  for (const a of items) {
    const item = el('li', null, { 'data-ad': a.id });
    const head = el('div', null, { class: 'line' });
    head.append(el('strong', `${a.id} · ${a.title}`), el('span', a.reward_kind === 'SLOT' ? 'SLOT' : `POINTS ${a.reward_points}`));
    const off = el('button', 'Disable', { type: 'button', class: 'link' });
    off.addEventListener('click', () => patchAd(a.id, { active: false }));
    const edit = el('button', 'Edit', { type: 'button', class: 'link' });
    edit.addEventListener('click', () => {
      const f = $('ad-form');
      f.id.value = a.id;
      f.title.value = a.title;
      f.reward_kind.value = a.reward_kind;
      f.reward_points.value = a.reward_points;
      f.active.checked = true;
      f.title.focus();
    });
    const tools = el('div', null, { class: 'row' });
    tools.append(edit, off);
    item.append(head, tools);
    list.append(item);
  }
  if (!list.children.length) list.append(el('li', 'No active ad', { class: 'small' }));
}

async function patchAd(id, body) {
  try {
    const a = await api(`/admin/ads/${encodeURIComponent(id)}`, { method: 'PATCH', body });
    await loadAds();
    say(`Ad ${a.id}: ${a.active ? 'active' : 'inactive'}`);
  } catch (error) {
    fail(error);
  }
}

// An id on the list is changed (PATCH, its kind stays); any other is
// created (POST; an inactive one is created again with the same id).
async function saveAd(event) {
  event.preventDefault();
  const f = event.target;
  const id = f.id.value.trim();
  const points = Number(f.reward_points.value || 0);
  try {
    let a;
    if (knownAds.has(id)) {
      const body = { title: f.title.value.trim() || null, active: f.active.checked };
      if (f.reward_kind.value === 'POINTS') body.reward_points = points;
      a = await api(`/admin/ads/${encodeURIComponent(id)}`, { method: 'PATCH', body });
    } else {
      const body = { id, title: f.title.value.trim(), reward_kind: f.reward_kind.value, reward_points: points, active: f.active.checked };
      a = await api('/admin/ads', { method: 'POST', body });
    }
    f.reset();
    await loadAds();
    say(`Ad ${a.id}: ${a.title}, ${a.reward_kind}${a.reward_kind === 'POINTS' ? ` ${a.reward_points}` : ''}, ${a.active ? 'active' : 'inactive'}`);
  } catch (error) {
    fail(error);
  }
}

// --- settings -------------------------------------------------------------------------

async function loadSettings() {
  const items = await api('/admin/settings');
  const list = $('setting-list');
  list.replaceChildren();
  for (const s of items) {
    const item = el('li', null, { 'data-key': s.key });
    const value = typeof s.value === 'string' ? s.value : JSON.stringify(s.value);
    if (s.rule.startsWith('not set here')) {
      // Set elsewhere (the clock, the environment, key fingerprints): shown, not offered.
      item.append(el('div', s.key, { class: 'small' }), el('div', value), el('div', s.description, { class: 'small' }));
      item.append(el('div', s.rule, { class: 'small' }));
      list.append(item);
      continue;
    }
    const form = el('form', null, { class: 'row setting', novalidate: true });
    const label = el('label', null, { class: 'grow' });
    label.append(el('span', s.key), el('input', null, { name: 'value', value, 'aria-label': s.key }));
    form.append(label, el('button', 'Save', { type: 'submit' }));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      saveSetting(s.key, form.value.value.trim());
    });
    item.append(form, el('div', s.description, { class: 'small' }), el('div', `rule: ${s.rule}`, { class: 'small' }));
    list.append(item);
  }
}

async function saveSetting(key, value) {
  try {
    await api('/admin/settings', { method: 'PATCH', body: { [key]: value } });
    await loadSettings();
    say(`Setting ${key} = ${value}`);
  } catch (error) {
    fail(error);
  }
}

// --- settlement, prices, batches ---------------------------------------------------------

async function settle(event) {
  event.preventDefault();
  const f = event.target;
  try {
    const body = { trading_day: f.trading_day.value, void_missing: f.void_missing.checked };
    const result = await api('/admin/settlement/manual', { method: 'POST', body });
    show($('settle-result'), result);
    say(`Settlement of ${body.trading_day} done`);
  } catch (error) {
    fail(error);
  }
}

async function triggerEod(event) {
  event.preventDefault();
  const f = event.target;
  try {
    const result = await api('/admin/eod/trigger', { method: 'POST', body: { trading_day: f.trading_day.value } });
    show($('eod-result'), result);
    say(`Closes of ${result.trading_day} asked for (job ${result.job})`);
  } catch (error) {
    fail(error);
  }
}

async function loadPrices(event) {
  event.preventDefault();
  const f = event.target;
  const closes = f.closes.value
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [trading_day, symbol, close] = line.split(',').map((part) => part.trim());
      return { trading_day, symbol, close };
    });
  if (!closes.length) {
    say('Give at least one line: trading_day,symbol,close', true);
    return;
  }
  try {
    const result = await api('/admin/eod/prices', { method: 'POST', body: { closes } });
    show($('prices-result'), result);
    say(`${closes.length} closes loaded`);
    f.reset();
  } catch (error) {
    fail(error);
  }
}

async function loadBatches() {
  const items = await api('/admin/batches?limit=20');
  const list = $('batches');
  list.replaceChildren();
  for (const b of items) {
    const item = el('li', null, { 'data-run': b.id });
    item.append(
      el('div', `${b.job} · ${b.status}${b.rows != null ? ` · ${b.rows} rows` : ''}`, { class: b.status === 'failed' ? 'loss' : '' }),
      el('div', `${kst(b.started_at)}${b.error ? ` · ${b.error}` : ''}`, { class: 'small' }),
    );
    list.append(item);
  }
  if (!list.children.length) list.append(el('li', 'No batch has run yet', { class: 'small' }));
}

async function runBatch(job) {
  try {
    const result = await api(`/admin/batches/${job}/run`, { method: 'POST' });
    await loadBatches();
    say(`${job}: ${JSON.stringify(result.result)}`);
  } catch (error) {
    fail(error);
  }
}

// --- universe and audit -----------------------------------------------------------------

async function loadAudit(action) {
  const query = action ? `?action=${encodeURIComponent(action)}&limit=20` : '?limit=20';
  const page = await api(`/admin/audit${query}`);
  const list = $('audit-list');
  list.replaceChildren();
  for (const a of page.items) {
    const item = el('li');
    item.append(el('div', `${kst(a.at)} · ${a.action} · ${a.subject ?? ''}`, { class: 'small' }), el('div', JSON.stringify(a.details)));
    list.append(item);
  }
  if (!list.children.length) list.append(el('li', 'Nothing found', { class: 'small' }));
}

async function setUniverse(event) {
  event.preventDefault();
  const f = event.target;
  const symbols = f.symbols.value.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  try {
    await api('/admin/universe/upsert', { method: 'POST', body: { trading_day: f.trading_day.value, symbols } });
    say(`Universe of ${f.trading_day.value}: ${symbols.join(', ')}`);
  } catch (error) {
    fail(error);
  }
}

// --- sign-in and start ----------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const f = event.target;
  try {
    const answer = await api('/v1/auth/login', {
      method: 'POST',
      auth: false,
      body: { email: f.email.value.trim(), password: f.password.value, otp: f.otp.value.trim() },
    });
    if (answer.user.role !== 'admin') {
      // A player's session is of no use here: end it at once.
      await api('/v1/auth/logout', { method: 'POST', auth: false, body: { refresh_token: answer.refresh_token } });
      say('This account is not an admin', true);
      return;
    }
    setTokens(answer);
    f.reset();
    say('');
    $('who').textContent = answer.user.email;
    $('signin').hidden = true;
    $('tabs').hidden = false;
    await showTab('dashboard');
  } catch (error) {
    fail(error);
  }
}

$('signin-form').addEventListener('submit', signIn);
for (const button of document.querySelectorAll('#tabs button')) {
  button.addEventListener('click', () => {
    say('');
    showTab(button.dataset.tab);
  });
}
$('inventory-form').addEventListener('submit', saveInventory);
$('ad-form').addEventListener('submit', saveAd);
$('settle-form').addEventListener('submit', settle);
$('eod-form').addEventListener('submit', triggerEod);
$('prices-form').addEventListener('submit', loadPrices);
$('universe-form').addEventListener('submit', setUniverse);
$('audit-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadAudit(event.target.audit_action.value.trim()).catch(fail);
});
for (const job of BATCHES) {
  const button = el('button', `Run ${job}`, { type: 'button', class: 'secondary', 'data-job': job });
  button.addEventListener('click', () => runBatch(job));
  $('batch-buttons').append(button);
}
