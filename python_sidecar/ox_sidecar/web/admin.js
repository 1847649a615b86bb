// The admin console: sign-in with password and one-time code, the day at a
// glance, charts of the daily metrics in plain SVG, the universe and the
// audit search, all through the admin API. Text from the API is set with
// textContent only.
import { api, Problem, setTokens } from './api.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

function say(text, isError = false) {
  const box = $('message');
  box.textContent = text;
  box.className = isError ? 'error' : '';
  box.hidden = !text;
}

function fail(error) {
  if (error instanceof Problem) say(`${error.code}: ${error.detail || ''}`, true);
  else say(String(error), true);
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text != null) node.textContent = String(text);
  return node;
}

// Bars per day, one colour per series side by side; a line of labels below.
function bars(target, days, series, max = null) {
  const width = 600;
  const height = 160;
  const bottom = 20;
  const top = 14;
  target.setAttribute('viewBox', `0 0 ${width} ${height}`);
  target.replaceChildren();
  const peak = max ?? Math.max(1, ...series.flatMap((s) => s.values.map((v) => Number(v) || 0)));
  const slot = width / Math.max(days.length, 1);
  const bar = Math.max(2, (slot * 0.8) / series.length);
  series.forEach((s, j) => {
    target.append(svg('text', { x: 4 + j * 120, y: 10, fill: s.color }, s.name));
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
  days.forEach((day, i) => {
    if (days.length <= 10 || i % Math.ceil(days.length / 10) === 0) {
      target.append(svg('text', { x: i * slot + 2, y: height - 6 }, day.slice(5)));
    }
  });
}

function figure(list, name, value) {
  list.append(el('dt', name), el('dd', value ?? '—'));
}

async function loadDashboard() {
  const d = await api('/admin/dashboard');
  const list = $('dashboard');
  list.replaceChildren();
  figure(list, 'Now (KST)', d.now);
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
  figure(list, 'Queue', JSON.stringify(d.queue));
  figure(list, 'Worker last seen', d.worker_last_seen);
  const alerts = $('alerts');
  alerts.replaceChildren();
  for (const a of d.alerts || []) alerts.append(el('li', `${a.severity} · ${a.rule} · ${a.subject ?? ''} · since ${a.first_seen}`));
  if (!alerts.children.length) alerts.append(el('li', 'No open alerts', { class: 'small' }));
  const today = (d.session && d.session.trading_day) || d.now.slice(0, 10);
  const from = new Date(Date.parse(today) - 60 * 86400000).toISOString().slice(0, 10);
  $('universe-form').trading_day.value ||= today;
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
}

async function loadAudit(action) {
  const query = action ? `?action=${encodeURIComponent(action)}&limit=20` : '?limit=20';
  const page = await api(`/admin/audit${query}`);
  const list = $('audit');
  list.replaceChildren();
  for (const a of page.items) {
    const item = el('li');
    item.append(el('div', `${a.at} · ${a.action} · ${a.subject ?? ''}`, { class: 'small' }), el('div', JSON.stringify(a.details)));
    list.append(item);
  }
  if (!list.children.length) list.append(el('li', 'Nothing found', { class: 'small' }));
}

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
    $('console').hidden = false;
    await loadDashboard();
    await loadAudit('');
  } catch (error) {
    fail(error);
  }
}

async function setUniverse(event) {
  event.preventDefault();
  const f = event.target;
  const symbols = f.symbols.value.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  try {
    await api('/admin/universe/upsert', { method: 'POST', body: { trading_day: f.trading_day.value, symbols } });
    say(`Universe of ${f.trading_day.value}: ${symbols.join(', ')}`);
    await loadAudit('universe.set');
  } catch (error) {
    fail(error);
  }
}

$('signin-form').addEventListener('submit', signIn);
$('universe-form').addEventListener('submit', setUniverse);
$('audit-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadAudit(event.target.audit_action.value.trim()).catch(fail);
});
