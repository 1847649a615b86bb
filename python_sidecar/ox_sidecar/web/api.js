// The API client. Both tokens live in this module's variables only: never in
// localStorage, sessionStorage or a cookie (README "Web app": a reload signs
// the player out; no cookie means no CSRF, no storage means nothing for a
// script to read back later).
let access = null;
let refresh = null;
let refreshing = null;

export class Problem extends Error {
  constructor(body, status, retryAfter) {
    super(body.code || 'UNKNOWN');
    this.code = body.code;
    this.detail = body.detail;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export function setTokens(tokens) {
  access = tokens.access_token;
  refresh = tokens.refresh_token;
}

export function signedIn() {
  return access !== null;
}

export function forget() {
  const token = refresh;
  access = null;
  refresh = null;
  return token;
}

async function problemOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = { code: 'INTERNAL' };
  }
  return new Problem(body, response.status, response.headers.get('Retry-After'));
}

async function send(path, { method = 'GET', body, idempotencyKey, auth = true, credentials = 'omit' }) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth && access) headers.Authorization = `Bearer ${access}`;
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials,
      cache: 'no-store',
    });
  } catch {
    throw new Problem({ code: 'NETWORK' }, 0, null);
  }
}

// One rotation at a time: two requests that both meet an expired access
// token share the same refresh (a refresh token is spent by its first use).
function rotate() {
  if (!refreshing) {
    const token = refresh;
    refreshing = (async () => {
      const r = await send('/v1/auth/refresh', { method: 'POST', body: { refresh_token: token }, auth: false });
      if (!r.ok) {
        forget();
        throw await problemOf(r);
      }
      setTokens(await r.json());
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

export async function api(path, options = {}) {
  let r = await send(path, options);
  if (r.status === 401 && options.auth !== false && refresh) {
    await rotate();
    r = await send(path, options); // the same Idempotency-Key: still one effect
  }
  if (!r.ok) throw await problemOf(r);
  return r.json();
}
