// The player's app: one page, four tabs, every number from the API. Every
// string from the API or a player is put in the page as text (textContent,
// createTextNode), never parsed as HTML.
import { api, forget, Problem, setTokens, signedIn } from './api.js';
import { lang, problemMessage, setLang, t, has } from './i18n.js';

const $ = (id) => document.getElementById(id);
const TABS = ['today', 'mine', 'points', 'shop', 'ranks', 'settlement'];

const state = {
  tab: 'today',
  user: null,
  session: null,
  universe: null,
  ads: [],
  settlementDay: null,
  offset: 0, // server clock minus this browser's clock, in ms (crypto.now() is the one clock)
  picks: new Map(), // symbol -> choice, today
  pending: new Set(), // symbols (and SKUs) with a request in flight
  keys: new Map(), // what -> Idempotency-Key, kept until the server answers for good
  predictionsCursor: null,
  ledgerCursor: null,
  period: 'week',
};

// --- small helpers ---------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, '');
    else if (value !== false && value != null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function keyFor(what) {
  if (!state.keys.has(what)) state.keys.set(what, newKey());
  return state.keys.get(what);
}

// A key is spent once the server has answered for good (a success or a
// refusal it stored); after a network failure or a 5xx the retry reuses it.
function settleKey(what, error) {
  if (!error || (error instanceof Problem && error.status > 0 && error.status < 500)) state.keys.delete(what);
}

function say(text, isError = false) {
  const box = $('message');
  box.textContent = text;
  box.className = isError ? 'error' : '';
  box.hidden = !text;
}

function showProblem(error) {
  if (error instanceof Problem) {
    say(error.code === 'NETWORK' ? t('network') : problemMessage(error), true);
    if (error.status === 401 && !signedIn()) showSignedOut();
  } else {
    say(t('INTERNAL'), true);
  }
}

const TZ_KST = 'Asia/Seoul';
const TZ_NY = 'America/New_York';

function when(iso, timeZone, withDate = true) {
  if (!iso) return '—';
  const options = { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  if (withDate) Object.assign(options, { month: 'numeric', day: 'numeric', weekday: 'short' });
  const locale = lang() === 'ko' ? 'ko-KR' : 'en-US';
  return new Intl.DateTimeFormat(locale, options).format(new Date(iso));
}

function kst(iso) {
  return `${when(iso, TZ_KST)} KST`;
}

function money(value) {
  if (value == null) return '—';
  return Number(value).toLocaleString(lang() === 'ko' ? 'ko-KR' : 'en-US', {
    minimumFractionDigits: 2,
    maximumFractionDigits: 4,
  });
}

// The API's change is a decimal string ("1.5000"): shown signed, two places.
function percent(value) {
  if (value == null) return '—';
  const n = Number(value);
  return `${n > 0 ? '+' : ''}${n.toFixed(2)}`;
}

function serverNow() {
  return Date.now() + state.offset;
}

// --- language ------------------------------------------------------------------

function applyLang() {
  document.documentElement.lang = lang();
  for (const node of document.querySelectorAll('[data-t]')) node.textContent = t(node.dataset.t);
  $('lang').textContent = lang() === 'ko' ? 'EN' : '한국어';
  $('lang').setAttribute('aria-label', lang() === 'ko' ? 'English' : '한국어');
  document.title = t('title');
}

// --- signed in or out --------------------------------------------------------

function showSignedIn(user) {
  state.user = user;
  $('who').textContent = user.email;
  $('logout').hidden = false;
  $('tabs').hidden = false;
  $('auth').hidden = true;
  show(state.tab);
}

function showSignedOut() {
  state.user = null;
  state.picks.clear();
  $('who').textContent = '';
  $('logout').hidden = true;
  $('tabs').hidden = true;
  for (const tab of TABS) $(tab).hidden = true;
  $('auth').hidden = false;
  $('today').hidden = false; // the day, its symbols and the settlements are public
  loadToday().catch(showProblem);
}

async function authenticate(event) {
  event.preventDefault();
  const form = event.target;
  const action = event.submitter && event.submitter.name === 'signup' ? 'signup' : 'login';
  const body = { email: form.email.value.trim(), password: form.password.value };
  for (const button of form.querySelectorAll('button')) button.disabled = true;
  try {
    const answer = await api(`/v1/auth/${action}`, { method: 'POST', body, auth: false });
    setTokens(answer);
    form.reset();
    say(t('welcome'));
    showSignedIn(answer.user);
  } catch (error) {
    showProblem(error);
  } finally {
    for (const button of form.querySelectorAll('button')) button.disabled = false;
  }
}

async function logout() {
  const token = forget();
  showSignedOut();
  say(t('signed_out'));
  if (token) {
    try {
      await api('/v1/auth/logout', { method: 'POST', body: { refresh_token: token }, auth: false });
    } catch {
      // The access token is gone from this page either way; the refresh
      // token expires on its own.
    }
  }
}

// --- tabs ------------------------------------------------------------------------

function show(tab) {
  state.tab = TABS.includes(tab) ? tab : 'today';
  for (const name of TABS) $(name).hidden = name !== state.tab;
  if (!signedIn()) $('auth').hidden = state.tab !== 'today';
  for (const button of document.querySelectorAll('#tabs button')) {
    if (button.dataset.tab === state.tab) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  const load = {
    today: loadToday,
    mine: () => loadPredictions(false),
    points: () => loadPoints(false),
    shop: loadShop,
    ranks: loadBoard,
    settlement: () => loadSettlement(state.settlementDay),
  };
  load[state.tab]().catch(showProblem);
}

// --- today -------------------------------------------------------------------------

async function loadToday() {
  const [session, universe, ads] = await Promise.all([
    api('/v1/session/today'),
    api('/v1/universe/today'),
    api('/v1/ads'),
  ]);
  state.offset = Date.parse(session.now) - Date.now();
  state.session = session;
  state.universe = universe;
  state.ads = ads.items;
  state.picks.clear();
  if (signedIn()) {
    const mine = await api(`/v1/predictions?trading_day=${session.trading_day}&limit=100`);
    for (const p of mine.items) state.picks.set(p.symbol, p.choice);
  }
  renderToday();
}

function accepting() {
  const s = state.session;
  return Boolean(s && s.accepting_predictions && serverNow() < Date.parse(s.cutoff_at));
}

function renderToday() {
  const s = state.session;
  if (!s) return;
  $('day').textContent = s.trading_day;
  $('phase').textContent = has(`phase_${s.phase}`) ? t(`phase_${s.phase}`) : s.phase;
  $('cutoff-kst').textContent = kst(s.cutoff_at);
  $('cutoff-ny').textContent = `${when(s.cutoff_at_new_york, TZ_NY)} New York`;
  const p = s.player;
  $('remaining').textContent = p
    ? t('remaining', { left: p.predictions_left, limit: p.predictions_limit, ads: p.ad_slot_unlocks_left })
    : '';
  tick();
  const list = $('universe');
  list.replaceChildren();
  const left = p ? p.predictions_left : 0;
  for (const item of state.universe.symbols) {
    const symbol = item.symbol;
    const pick = state.picks.get(symbol);
    const off = !signedIn() || !accepting() || pick !== undefined || left <= 0 || state.pending.has(symbol);
    const button = (choice, glyph, cls, name) =>
      el(
        'button',
        {
          type: 'button',
          class: `ox ${cls}${pick === choice ? ' chosen' : ''}`,
          'aria-label': t(name, { symbol }),
          'aria-pressed': pick === choice ? 'true' : 'false',
          disabled: off,
          onclick: () => predict(symbol, choice),
        },
        glyph,
      );
    list.append(
      el(
        'li',
        { class: 'symbol', 'data-symbol': symbol },
        el('span', { class: 'name' }, symbol, el('span', { class: 'sub' }, `${t('prev_close')} ${money(item.previous_close)}`)),
        button('UP', 'O', 'up', 'up_name'),
        button('DOWN', 'X', 'down', 'down_name'),
        pick ? el('span', { class: 'pick' }, t('your_pick', { choice: t(pick === 'UP' ? 'up' : 'down') })) : null,
      ),
    );
  }
  renderAds();
}

// Each ad with what it gives and how many of its kind are left today (the
// session's caps, from the server); the click only records the view.
function renderAds() {
  const list = $('ads');
  list.replaceChildren();
  $('ads-heading').hidden = state.ads.length === 0;
  const p = state.session && state.session.player;
  for (const ad of state.ads) {
    const slot = ad.reward_kind === 'SLOT';
    const left = p ? (slot ? p.ad_slot_unlocks_left : p.ad_point_rewards_left) : null;
    const off = !signedIn() || !accepting() || left === 0 || state.pending.has(`ad:${ad.id}`);
    list.append(
      el(
        'li',
        { class: 'line', 'data-ad': ad.id },
        el(
          'span',
          {},
          el('strong', {}, ad.title),
          el('span', { class: 'small block' }, slot ? t('ad_slot') : t('ad_points', { points: ad.reward_points })),
          left != null ? el('span', { class: 'small block cap' }, t(slot ? 'ad_cap_slot' : 'ad_cap_points', { left })) : null,
        ),
        el('button', { type: 'button', class: 'secondary', disabled: off, onclick: () => watchAd(ad) }, t('watch')),
      ),
    );
  }
}

async function watchAd(ad) {
  const what = `ad:${ad.id}`;
  if (state.pending.has(what)) return;
  state.pending.add(what);
  renderAds();
  let failure = null;
  try {
    await api(`/v1/ads/${encodeURIComponent(ad.id)}/click`, { method: 'POST', idempotencyKey: keyFor(what) });
    say(t('ad_shown'));
  } catch (error) {
    failure = error;
    showProblem(error);
  } finally {
    settleKey(what, failure);
    state.pending.delete(what);
  }
  await loadToday().catch(() => renderToday());
}

function tick() {
  const s = state.session;
  if (!s || $('today').hidden) return;
  const left = Date.parse(s.cutoff_at) - serverNow();
  if (!s.accepting_predictions || left <= 0) {
    $('countdown').textContent = t('closed');
    if (s.accepting_predictions) {
      // The cutoff just passed here: close the buttons now, then ask the server.
      s.accepting_predictions = false;
      renderToday();
      loadToday().catch(showProblem);
    }
    return;
  }
  const total = Math.floor(left / 1000);
  const days = Math.floor(total / 86400);
  const hms = [Math.floor(total / 3600) % 24, Math.floor(total / 60) % 60, total % 60]
    .map((n) => String(n).padStart(2, '0'))
    .join(':');
  $('countdown').textContent = days > 0 ? `${days}d ${hms}` : hms;
}

async function predict(symbol, choice) {
  if (state.pending.has(symbol) || state.picks.has(symbol)) return; // a double tap
  state.pending.add(symbol);
  renderToday();
  const what = `predict:${state.session.trading_day}:${symbol}`;
  let failure = null;
  try {
    const made = await api(`/v1/predictions/${encodeURIComponent(symbol)}`, {
      method: 'POST',
      body: { choice },
      idempotencyKey: keyFor(what),
    });
    state.picks.set(symbol, made.choice || choice);
    say(t('predicted', { symbol, choice: t(choice === 'UP' ? 'up' : 'down') }));
  } catch (error) {
    failure = error;
    showProblem(error);
  } finally {
    settleKey(what, failure);
    state.pending.delete(symbol);
  }
  await loadToday().catch(() => renderToday());
}

// --- my predictions ---------------------------------------------------------------

// Only the fields the server sent: streaks and accuracy come with the
// leaderboard's rollup and may be absent.
function renderStats(stats) {
  const list = $('stats');
  list.replaceChildren();
  const add = (name, value) => list.append(el('dt', {}, t(name)), el('dd', { 'data-stat': name }, value));
  if (stats.predictions != null) add('stat_predictions', stats.predictions);
  if (stats.won != null && stats.lost != null) {
    add('my_stats', t('stat_record', { won: stats.won, lost: stats.lost, void: stats.void ?? 0 }));
  }
  if (stats.win_rate != null) add('stat_win_rate', `${(Number(stats.win_rate) * 100).toFixed(1)}%`);
  if (stats.current_streak != null) add('stat_current_streak', t('streak_value', { n: stats.current_streak }));
  if (stats.best_streak != null) add('stat_best_streak', t('streak_value', { n: stats.best_streak }));
  if (stats.accuracy && typeof stats.accuracy === 'object') {
    const parts = ['week', 'month', 'all']
      .filter((period) => stats.accuracy[period] != null)
      .map((period) => `${t(period)} ${(Number(stats.accuracy[period]) * 100).toFixed(1)}%`);
    if (parts.length) add('stat_accuracy', parts.join(' · '));
  }
  list.hidden = !list.children.length;
}

// One block per trading day (newest first), its predictions inside, and
// the way to that day's public settlement.
function dayBlock(day) {
  const found = $('predictions').querySelector(`[data-day-block="${day}"] ul`);
  if (found) return found;
  const list = el('ul', { class: 'cards' });
  $('predictions').append(
    el(
      'div',
      { class: 'day', 'data-day-block': day },
      el(
        'div',
        { class: 'line day-head' },
        el('h3', {}, day),
        el('button', { type: 'button', class: 'link', onclick: () => openSettlement(day) }, t('view_settlement')),
      ),
      list,
    ),
  );
  return list;
}

async function loadPredictions(more) {
  const cursor = more && state.predictionsCursor ? `&cursor=${state.predictionsCursor}` : '';
  const [page, stats] = await Promise.all([
    api(`/v1/predictions?limit=20${cursor}`),
    more ? null : api('/v1/users/stats').catch(() => null),
  ]);
  if (stats) renderStats(stats);
  const box = $('predictions');
  if (!more) box.replaceChildren();
  for (const p of page.items) {
    const outcome = has(`outcome_${p.outcome}`) ? t(`outcome_${p.outcome}`) : p.outcome;
    const cls = p.outcome === 'WON' ? 'win' : p.outcome === 'LOST' ? 'loss' : '';
    dayBlock(p.trading_day).append(
      el(
        'li',
        { 'data-day': p.trading_day, 'data-symbol': p.symbol },
        el('div', { class: 'line' }, el('strong', {}, `${p.symbol} · ${t(p.choice === 'UP' ? 'up' : 'down')}`), el('span', { class: cls }, outcome)),
        p.close != null
          ? el('div', { class: 'closes' }, t('closes', { prev: money(p.close_previous), close: money(p.close), change: percent(p.change_percent) }))
          : null,
        p.void_reason && has(`void_${p.void_reason}`) ? el('div', { class: 'small' }, t(`void_${p.void_reason}`)) : null,
        p.points > 0 ? el('div', { class: 'win' }, t('points_won', { points: p.points })) : null,
      ),
    );
  }
  if (!box.children.length) box.append(el('p', { class: 'small' }, t('no_items')));
  state.predictionsCursor = page.next_cursor;
  $('predictions-more').hidden = !page.next_cursor;
}

// --- settlement (public) --------------------------------------------------------

function openSettlement(day) {
  state.settlementDay = day;
  say('');
  show('settlement');
}

async function loadSettlement(day) {
  const form = $('settlement-form');
  const list = $('settled');
  const fixes = $('corrections');
  list.replaceChildren();
  fixes.replaceChildren();
  $('corrections-heading').hidden = true;
  $('settlement-phase').textContent = '';
  $('settlement-title').textContent = t('settlement');
  if (!day) {
    if (state.session) form.trading_day.value ||= state.session.trading_day;
    return;
  }
  form.trading_day.value = day;
  const s = await api(`/v1/settlements/${encodeURIComponent(day)}`);
  $('settlement-title').textContent = t('settlement_of', { day: s.trading_day });
  $('settlement-phase').textContent = has(`phase_${s.phase}`) ? t(`phase_${s.phase}`) : s.phase;
  for (const r of s.symbols) {
    const outcome = has(`market_${r.outcome}`) ? t(`market_${r.outcome}`) : r.outcome;
    const cls = r.outcome === 'UP' ? 'win' : r.outcome === 'DOWN' ? 'loss' : '';
    list.append(
      el(
        'li',
        { 'data-symbol': r.symbol },
        el('div', { class: 'line' }, el('strong', {}, r.symbol), el('span', { class: cls }, outcome)),
        el('div', { class: 'closes' }, t('closes', { prev: money(r.close_previous), close: money(r.close), change: percent(r.change_percent) })),
        r.void_reason && has(`void_${r.void_reason}`) ? el('div', { class: 'small' }, t(`void_${r.void_reason}`)) : null,
        el('div', { class: 'small' }, `${r.previous_trading_day} → ${s.trading_day}`),
        el('div', { class: 'small' }, `${t('source')} ${r.source ?? '—'} · ${t('fetched')} ${kst(r.fetched_at)}`),
        el('div', { class: 'small' }, `${t('settled_at')} ${kst(r.settled_at)}`),
      ),
    );
  }
  if (!list.children.length) list.append(el('li', { class: 'small' }, t('pending_settlement')));
  for (const c of s.corrections) {
    const changes = (c.outcomes || []).map((o) => `${o.symbol} ${o.from} → ${o.to}`).join(', ');
    fixes.append(el('li', {}, el('div', { class: 'small' }, kst(c.corrected_at)), el('div', {}, c.reason), changes ? el('div', { class: 'small' }, changes) : null));
  }
  $('corrections-heading').hidden = !fixes.children.length;
}

// --- points -------------------------------------------------------------------------

async function loadPoints(more) {
  const cursor = more && state.ledgerCursor ? `&cursor=${state.ledgerCursor}` : '';
  const [balance, page] = await Promise.all([api('/v1/points/balance'), api(`/v1/points/ledger?limit=20${cursor}`)]);
  $('balance').textContent = t('points_unit', { points: balance.balance.toLocaleString() });
  const list = $('ledger');
  if (!more) list.replaceChildren();
  for (const e of page.items) {
    const reason = has(`reason_${e.reason}`) ? t(`reason_${e.reason}`) : e.reason;
    list.append(
      el(
        'li',
        {},
        el('div', { class: 'line' }, el('span', {}, reason), el('strong', { class: e.amount > 0 ? 'win' : 'loss' }, e.amount > 0 ? `+${e.amount}` : String(e.amount))),
        el('div', { class: 'small' }, `${kst(e.created_at)} · ${t('balance')} ${e.balance_after}`),
      ),
    );
  }
  if (!list.children.length) list.append(el('li', { class: 'small' }, t('no_items')));
  state.ledgerCursor = page.next_cursor;
  $('ledger-more').hidden = !page.next_cursor;
}

// --- shop -----------------------------------------------------------------------------

async function loadShop() {
  const [rewards, mine] = await Promise.all([api('/v1/rewards'), api('/v1/rewards/redemptions?limit=20')]);
  const list = $('rewards');
  list.replaceChildren();
  for (const r of rewards.items) {
    list.append(
      el(
        'li',
        { class: 'line', 'data-sku': r.sku },
        el('span', {}, el('strong', {}, r.name), el('span', { class: 'small block' }, t('cost', { cost: r.cost_points, available: r.available }))),
        el('button', { type: 'button', disabled: r.available <= 0 || state.pending.has(r.sku), onclick: () => redeem(r) }, t('redeem')),
      ),
    );
  }
  if (!list.children.length) list.append(el('li', { class: 'small' }, t('no_items')));
  const names = new Map(rewards.items.map((r) => [r.sku, r.name]));
  const done = $('redemptions');
  done.replaceChildren();
  for (const d of mine.items) {
    const status = has(`status_${d.status}`) ? t(`status_${d.status}`) : d.status;
    done.append(
      el(
        'li',
        { 'data-redemption': d.id },
        el('div', { class: 'line' }, el('strong', {}, names.get(d.sku) || d.sku), el('span', {}, status)),
        el('div', { class: 'small' }, `${kst(d.created_at)} · -${d.cost_points}`),
      ),
    );
  }
  if (!done.children.length) done.append(el('li', { class: 'small' }, t('no_items')));
}

async function redeem(reward) {
  if (state.pending.has(reward.sku)) return;
  state.pending.add(reward.sku);
  const what = `redeem:${reward.sku}`;
  let failure = null;
  try {
    await api(`/v1/rewards/${encodeURIComponent(reward.sku)}/redeem`, { method: 'POST', idempotencyKey: keyFor(what) });
    say(t('redeemed', { name: reward.name }));
  } catch (error) {
    failure = error;
    showProblem(error);
  } finally {
    settleKey(what, failure);
    state.pending.delete(reward.sku);
  }
  await loadShop().catch(showProblem);
}

// --- ranking --------------------------------------------------------------------------

async function loadBoard() {
  const [me, board] = await Promise.all([api('/v1/users/me'), api(`/v1/leaderboard?period=${state.period}&limit=50`)]);
  const input = document.querySelector('#nickname-form input[name=nickname]');
  if (document.activeElement !== input) input.value = me.nickname || '';
  for (const button of document.querySelectorAll('.periods button')) {
    button.setAttribute('aria-pressed', button.dataset.period === state.period ? 'true' : 'false');
  }
  const list = $('board');
  list.replaceChildren();
  for (const r of board.items) {
    const mine = me.nickname != null && r.nickname === me.nickname;
    list.append(
      el(
        'li',
        { class: mine ? 'me' : null, 'data-rank': r.rank },
        el('div', { class: 'line' }, el('strong', {}, `${r.rank}. `, r.nickname ?? t('anonymous')), el('span', {}, t('board_line', r))),
        r.accuracy != null ? el('div', { class: 'small' }, t('accuracy', { value: (Number(r.accuracy) * 100).toFixed(1) })) : null,
      ),
    );
  }
  if (!list.children.length) list.append(el('li', { class: 'small' }, t('no_items')));
}

async function saveNickname(event) {
  event.preventDefault();
  const value = event.target.nickname.value.trim();
  try {
    await api('/v1/users/me/nickname', { method: 'POST', body: { nickname: value || null } });
    say(t('nickname_saved'));
    await loadBoard();
  } catch (error) {
    showProblem(error);
  }
}

// --- start ---------------------------------------------------------------------------

// Back from Google (the OIDC redirect URI is this page): the code and
// state go to the API's callback with the browser-binding cookie it set
// when the flow began; the address bar forgets them at once.
async function finishGoogle() {
  const query = new URLSearchParams(location.search);
  if (!query.has('state') && !query.has('error')) return false;
  history.replaceState(null, '', '/');
  try {
    if (query.has('error') || !query.get('code')) throw new Problem({ code: 'OAUTH_FAILED' }, 400, null);
    const answer = await api('/v1/auth/oauth/callback', {
      method: 'POST',
      body: { code: query.get('code'), state: query.get('state') },
      auth: false,
      credentials: 'same-origin',
    });
    setTokens(answer);
    const me = await api('/v1/users/me');
    say(t('welcome'));
    showSignedIn(me);
    return true;
  } catch (error) {
    showSignedOut();
    showProblem(error);
    return true;
  }
}

function start() {
  applyLang();
  $('auth-form').addEventListener('submit', authenticate);
  $('logout').addEventListener('click', logout);
  $('lang').addEventListener('click', () => {
    setLang(lang() === 'ko' ? 'en' : 'ko');
    applyLang();
    if (signedIn() || state.tab !== 'today') show(state.tab);
    else renderToday();
  });
  for (const button of document.querySelectorAll('#tabs button')) {
    button.addEventListener('click', () => {
      say('');
      show(button.dataset.tab);
    });
  }
  $('nickname-form').addEventListener('submit', saveNickname);
  $('settlement-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const day = event.target.trading_day.value;
    if (day) openSettlement(day);
  });
  $('settlement-link').addEventListener('click', () => openSettlement(null));
  $('back-today').addEventListener('click', () => {
    say('');
    show('today');
  });
  for (const button of document.querySelectorAll('.periods button')) {
    button.addEventListener('click', () => {
      state.period = button.dataset.period;
      loadBoard().catch(showProblem);
    });
  }
  $('predictions-more').addEventListener('click', () => loadPredictions(true).catch(showProblem));
  $('ledger-more').addEventListener('click', () => loadPoints(true).catch(showProblem));
  setInterval(tick, 1000);
  // The server's word on the session now and then, and when the player comes back.
  setInterval(() => {
    if (!$('today').hidden) loadToday().catch(showProblem);
  }, 60000);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && !$('today').hidden) loadToday().catch(showProblem);
  });
  finishGoogle().then((done) => {
    if (!done) showSignedOut();
  });
}

start();
