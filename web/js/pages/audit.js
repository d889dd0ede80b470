// The Audit page: the hash-chained trail with filters (who, what, object,
// time) and paging, and "Verify chain".
import * as api from '../api.js';
import { h, nextId, field, setFieldError, timeEl, errorBox, option } from '../dom.js';
import { detailText } from './detail.js';

const PAGE_SIZES = [10, 25, 50, 100, 200];
const ACTIONS = [
  'system.create', 'system.update', 'policy.set', 'policy.hold', 'policy.approve_failed', 'package.create', 'mock.create',
  'request.import', 'request.approve', 'request.issue', 'request.reject', 'request.expire',
  'device.complete', 'device.provisioned', 'gateway.disabled', 'gateway.enabled',
  'user.create', 'user.password', 'user.disable', 'user.enable', 'token.create', 'token.revoke',
  'session.login', 'session.logout', 'session.login_failed',
];

const S = { filters: { actor: '', action: '', object: '', since: '', until: '' }, stack: [''], limit: 50 };

/** "2026-11-29T15:00" (a datetime-local value, read as UTC) → RFC 3339. */
function toRfc3339(v) {
  if (!v) return '';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?/.exec(v);
  return m ? `${m[1]}T${m[2]}${m[3] || ':00'}Z` : v;
}

/** A request's entries link to its page. */
function objectCell(a) {
  if (/^request\./.test(a.action) && /^[a-z2-7]{26}$/.test(a.object || '')) {
    return h('a', { class: 'mono small', href: `#/devices/${a.object}`, text: a.object });
  }
  return h('span', { class: 'mono small', text: a.object || '' });
}

export function mount(main) {
  let stopped = false;
  let next = '';
  const err = errorBox();

  const actor = h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', placeholder: 'user:alice' });
  const listId = nextId('act');
  const action = h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', list: listId, placeholder: 'request.approve' });
  const object = h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', placeholder: 'request id, device id, system…' });
  const since = h('input', { type: 'datetime-local', step: '1' });
  const until = h('input', { type: 'datetime-local', step: '1' });
  const fields = {
    actor: field('Who', actor, { errorFor: 'actor' }),
    action: field('What', action, { errorFor: 'action' }),
    object: field('Device or object', object, { errorFor: 'object' }),
    since: field('Since (UTC)', since, { errorFor: 'since' }),
    until: field('Until (UTC)', until, { errorFor: 'until' }),
  };
  const apply = h('button', { type: 'submit', class: 'button primary', text: 'Apply filters' });
  const reset = h('button', { type: 'button', class: 'button subtle', text: 'Clear' });
  const form = h('form', { class: 'filters filters-audit', role: 'search', 'aria-label': 'Filter the audit trail', novalidate: true },
    Object.values(fields).map((f) => f.wrap),
    h('datalist', { id: listId }, ACTIONS.map((a) => h('option', { value: a }))),
    h('div', { class: 'field field-end button-row' }, apply, reset));

  const verifyBtn = h('button', { type: 'button', class: 'button', text: 'Verify chain' });
  const verifyOut = h('div', { class: 'verify', role: 'status', 'aria-live': 'polite' });

  const tbody = h('tbody');
  const prev = h('button', { type: 'button', class: 'button', text: 'Previous page' });
  const nextBtn = h('button', { type: 'button', class: 'button', text: 'Next page' });
  const pageNo = h('span', { class: 'muted' });
  const perPage = h('select', null, PAGE_SIZES.map((n) => option(String(n), String(n), n === S.limit)));
  perPage.addEventListener('change', () => {
    S.limit = Number(perPage.value);
    S.stack = [''];
    load();
  });
  const wrap = h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Audit entries', tabindex: '0' },
    h('table', { class: 'table table-audit' },
      h('caption', { class: 'sr-only', text: 'Audit trail, newest first' }),
      h('thead', null, h('tr', null, ['#', 'Time', 'Who', 'From', 'What', 'Object', 'Detail'].map((t) => h('th', { scope: 'col', text: t })))),
      tbody));

  main.append(
    h('div', { class: 'page-head' },
      h('div', null,
        h('h1', { text: 'Audit trail' }),
        h('p', { class: 'lead', text: 'Every change, who made it and from where. Entries are hash-chained: a change to any entry breaks the chain.' })),
      h('div', { class: 'page-actions' }, verifyBtn)),
    verifyOut, form, err, wrap,
    h('nav', { class: 'pager', 'aria-label': 'Pages of the audit trail' },
      h('span', { class: 'per-page' }, h('label', { for: (perPage.id = nextId('pp')), class: 'muted', text: 'Entries per page' }), perPage),
      prev, pageNo, nextBtn));

  function sync() {
    actor.value = S.filters.actor;
    action.value = S.filters.action;
    object.value = S.filters.object;
    since.value = S.filters.since;
    until.value = S.filters.until;
  }

  async function load() {
    const f = S.filters;
    try {
      const ans = await api.get('/api/v1/audit', {
        actor: f.actor, action: f.action, object: f.object,
        since: toRfc3339(f.since), until: toRfc3339(f.until),
        limit: S.limit, cursor: S.stack[S.stack.length - 1],
      });
      if (stopped) return;
      err.show(null);
      next = ans.next_cursor || '';
      const items = ans.items || [];
      tbody.replaceChildren(...(items.length ? items.map((a) => h('tr', null,
        h('td', { class: 'num', text: String(a.seq) }),
        h('td', { class: 'nowrap' }, timeEl(a.time, { seconds: true })),
        h('td', { text: a.actor }),
        h('td', { class: 'muted', text: a.from || '' }),
        h('td', null, h('span', { class: 'action', text: a.action })),
        h('td', { class: 'wrap' }, objectCell(a)),
        h('td', { class: 'wrap small', text: detailText(a.detail) })))
        : [h('tr', null, h('td', { colspan: '7', class: 'empty', text: 'No entries match these filters.' }))]));
      prev.disabled = S.stack.length <= 1;
      nextBtn.disabled = !next;
      pageNo.textContent = `Page ${S.stack.length}`;
    } catch (e) {
      if (stopped) return;
      for (const k of Object.keys(fields)) setFieldError(fields[k].control, '');
      if (e.field && fields[e.field]) setFieldError(fields[e.field].control, `${e.message} (${e.code})`);
      else err.show(e);
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    for (const k of Object.keys(fields)) setFieldError(fields[k].control, '');
    S.filters = { actor: actor.value.trim(), action: action.value.trim(), object: object.value.trim(), since: since.value, until: until.value };
    S.stack = [''];
    load();
  });
  reset.addEventListener('click', () => {
    S.filters = { actor: '', action: '', object: '', since: '', until: '' };
    S.stack = [''];
    sync();
    load();
  });
  prev.addEventListener('click', () => {
    if (S.stack.length > 1) {
      S.stack.pop();
      load().then(() => wrap.focus());
    }
  });
  nextBtn.addEventListener('click', () => {
    if (next) {
      S.stack.push(next);
      load().then(() => wrap.focus());
    }
  });

  verifyBtn.addEventListener('click', async () => {
    verifyBtn.disabled = true;
    verifyOut.className = 'verify';
    verifyOut.textContent = 'Verifying the chain…';
    try {
      const ans = await api.get('/api/v1/audit/verify');
      verifyOut.className = 'verify verify-ok';
      verifyOut.replaceChildren(h('strong', { text: 'Chain verified.' }), ` ${ans.entries} entries, each linked to the one before; none was changed or removed. Checked ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC.`);
    } catch (e) {
      verifyOut.className = 'verify verify-bad';
      const b = e.body || {};
      if (e.status === 409 && b.ok === false) {
        verifyOut.replaceChildren(h('strong', { text: 'Chain broken.' }), ` ${b.error ? b.error.message : e.message}`,
          h('span', { class: 'code', text: ` ${b.error ? b.error.code : e.code}` }),
          ` (${b.entries} entries checked).`);
      } else {
        verifyOut.replaceChildren(h('strong', { text: 'Could not verify: ' }), `${e.message} (${e.code})`);
      }
    } finally {
      verifyBtn.disabled = false;
    }
  });

  sync();
  load();
  return () => {
    stopped = true;
  };
}
