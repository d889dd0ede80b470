// The operator API (docs/api.md) as the console uses it: the session cookie
// is sent by the browser; every POST, PUT and DELETE carries the CSRF value
// the sign-in answered, kept in sessionStorage so a reload keeps working.

const CSRF_KEY = 'custos.csrf';

export class ApiError extends Error {
  constructor(status, code, message, field, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.body = body;
  }
}

let unauthenticated = () => {};

/** Called with the error when a call answers 401 (the session ended). */
export function onUnauthenticated(fn) {
  unauthenticated = fn;
}

export function csrf() {
  try {
    return sessionStorage.getItem(CSRF_KEY) || '';
  } catch {
    return '';
  }
}

export function setCsrf(v) {
  try {
    if (v) sessionStorage.setItem(CSRF_KEY, v);
    else sessionStorage.removeItem(CSRF_KEY);
  } catch {
    /* storage refused: the value only lives for this page */
  }
}

function withQuery(path, query) {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
  }
  const s = qs.toString();
  return s ? `${path}?${s}` : path;
}

/** "attachment; filename=abc.mccp" → "abc.mccp". */
function filenameOf(res, fallback) {
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  if (!m) return fallback;
  const name = decodeURIComponent(m[1]).replace(/[/\\]/g, '_');
  return name || fallback;
}

/**
 * call(method, path, {query, json, body, type, blob, filename, withStatus, noAuthRedirect, signal})
 * → the JSON answer, null for 204, {blob, filename} with blob: true, or
 * {status, data} with withStatus: true.
 * Throws ApiError (status 0 when the server could not be reached).
 */
export async function call(method, path, opts = {}) {
  const headers = { Accept: opts.blob ? '*/*' : 'application/json' };
  let body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = opts.type;
    body = opts.body;
  }
  if (method !== 'GET' && method !== 'HEAD') headers['X-Custos-CSRF'] = csrf();
  let res;
  try {
    res = await fetch(withQuery(path, opts.query), {
      method,
      headers,
      body,
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      signal: opts.signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', 'The server could not be reached. Check the connection and try again.');
  }
  if (!res.ok) {
    let j = null;
    try {
      j = await res.json();
    } catch {
      j = null;
    }
    const e = (j && j.error) || {};
    const err = new ApiError(res.status, e.code || `http_${res.status}`,
      e.message || `The server answered ${res.status} ${res.statusText}`.trim(), e.field, j);
    if (res.status === 429) {
      const ra = res.headers.get('Retry-After');
      if (ra) err.message += ` (try again in ${ra} s)`;
    }
    if (res.status === 401 && !opts.noAuthRedirect) unauthenticated(err);
    throw err;
  }
  if (opts.blob) {
    const blob = await res.blob();
    return { blob, filename: filenameOf(res, opts.filename || 'download') };
  }
  let data = null;
  if (res.status !== 204) {
    const ct = res.headers.get('Content-Type') || '';
    data = ct.startsWith('application/json') ? await res.json() : await res.text();
  }
  return opts.withStatus ? { status: res.status, data } : data;
}

export const get = (path, query, opts) => call('GET', path, { ...opts, query });
export const post = (path, json, opts) => call('POST', path, { ...opts, json });
export const put = (path, json, opts) => call('PUT', path, { ...opts, json });

export const enc = encodeURIComponent;

// ---- the session ------------------------------------------------------------------

export async function signIn(username, password) {
  const s = await call('POST', '/api/v1/session', { json: { username, password }, noAuthRedirect: true });
  setCsrf(s.csrf);
  return s;
}

export async function whoAmI() {
  const s = await call('GET', '/api/v1/session', { noAuthRedirect: true });
  if (s && s.csrf) setCsrf(s.csrf);
  return s;
}

export async function signOut() {
  try {
    await call('DELETE', '/api/v1/session', { noAuthRedirect: true });
  } finally {
    setCsrf('');
  }
}
