// DOM helpers of the console. Everything is built with createElement and
// textContent: API data never goes through an HTML parser.

let uid = 0;

/** A unique id for label/control pairs. */
export function nextId(prefix = 'c') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * h('button', {class: 'primary', on: {click: fn}}, 'Save')
 * Attributes: class, text, for, dataset {}, on {}, boolean properties
 * (hidden, disabled, checked, required, multiple, selected), value, and any
 * other attribute by name (aria-*, type, href, id, ...). Never "style".
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'for') el.htmlFor = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'on') {
        for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      } else if (['hidden', 'disabled', 'checked', 'required', 'multiple', 'selected', 'open', 'readOnly'].includes(k)) {
        el[k] = Boolean(v);
      } else if (k === 'value') el.value = v;
      else if (k === 'style') throw new Error('no inline styles (CSP)');
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** el.append that skips null/false and flattens arrays (like h's children). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A labelled control: returns {wrap, control, error}. */
export function field(label, control, { hint, cls, errorFor } = {}) {
  if (!control.id) control.id = nextId('f');
  const error = h('p', { class: 'field-error', id: `${control.id}-err`, hidden: true });
  const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint`, text: hint }) : null;
  const describedBy = [hintEl ? hintEl.id : null, error.id].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', describedBy);
  if (errorFor) control.dataset.field = errorFor;
  const wrap = h('div', { class: ['field', cls] },
    h('label', { for: control.id, text: label }), control, hintEl, error);
  control._fieldError = error;
  return { wrap, control, error };
}

/** Show (or with msg empty, hide) the error next to a control made by field(). */
export function setFieldError(control, msg) {
  const err = control._fieldError;
  if (!err) return;
  err.textContent = msg || '';
  err.hidden = !msg;
  if (msg) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
}

export function option(value, label, selected) {
  return h('option', { value, text: label, selected: selected });
}

/** A visually hidden label for a control whose purpose the layout shows. */
export function srLabel(control, text) {
  if (!control.id) control.id = nextId('f');
  return h('label', { class: 'sr-only', for: control.id, text });
}

// ---- time --------------------------------------------------------------------

function pad(n) {
  return String(n).padStart(2, '0');
}

/** "2026-11-29 15:00 UTC" (seconds with {seconds: true}). */
export function fmtTime(iso, { seconds = false } = {}) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const base = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  return `${base}${seconds ? `:${pad(d.getUTCSeconds())}` : ''} UTC`;
}

export function timeEl(iso, opts) {
  return h('time', { datetime: iso || undefined, text: fmtTime(iso, opts) });
}

export function isPast(iso) {
  const d = new Date(iso);
  return !Number.isNaN(d.getTime()) && d.getTime() < Date.now();
}

// ---- badges --------------------------------------------------------------------

export const STATES = ['pending', 'approved', 'certified', 'provisioned', 'rejected', 'expired', 'revoked'];

const STATE_LABEL = {
  pending: 'Pending',
  approved: 'Approved',
  certified: 'Certified',
  provisioned: 'Provisioned',
  rejected: 'Rejected',
  expired: 'Expired',
  revoked: 'Revoked',
};

export function stateLabel(s) {
  return STATE_LABEL[s] || s;
}

/** A state badge: colour AND text (the text is the state's name). */
export function badge(state) {
  return h('span', { class: `badge badge-${STATES.includes(state) ? state : 'other'}`, text: state });
}


// ---- sizes, errors ---------------------------------------------------------------

export function fmtBytes(n) {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** The error as shown to a person: its message, then its code. */
export function errorLine(e) {
  if (!e) return '';
  const code = e.code ? ` (${e.code})` : '';
  return `${e.message || String(e)}${code}`;
}

/** An inline error box (role=alert) for a form or section. */
export function errorBox() {
  const el = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
  el.show = (e) => {
    if (!e) {
      el.hidden = true;
      el.textContent = '';
      return;
    }
    add(clear(el),
      h('strong', { text: typeof e === 'string' ? e : e.message || String(e) }),
      e.code ? h('span', { class: 'code', text: ` ${e.code}` }) : null,
      e.field ? h('span', { class: 'code', text: ` · ${e.field}` }) : null,
    );
    el.hidden = false;
  };
  return el;
}

// ---- toasts ------------------------------------------------------------------------

export function toast(msg, kind = 'ok') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: `toast toast-${kind}`, text: msg });
  box.appendChild(t);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// ---- downloads ------------------------------------------------------------------------

/** Save a Blob under a file name (an <a download> on an object URL). */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, class: 'sr-only', tabindex: '-1' });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

// ---- focus across re-renders --------------------------------------------------------------

/** Remember which keyed control has focus (data-row + data-fk). */
export function focusKey() {
  const a = document.activeElement;
  if (!a || !a.dataset || !a.dataset.fk) return null;
  const row = a.closest('[data-row]');
  return { row: row ? row.dataset.row : '', fk: a.dataset.fk };
}

export function restoreFocus(root, key) {
  if (!key) return;
  const rows = key.row ? root.querySelectorAll('[data-row]') : [root];
  for (const r of rows) {
    if (key.row && r.dataset.row !== key.row) continue;
    const el = r.querySelector(`[data-fk="${CSS.escape(key.fk)}"]`);
    if (el) {
      el.focus({ preventScroll: true });
      return;
    }
  }
}
