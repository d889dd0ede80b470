// The Devices page: every provisioning request, filtered and paged, with the
// counts per state; approve and reject one or many. Polls every few seconds
// (paused while the tab is hidden) without losing the selection or focus.
import * as api from '../api.js';
import { h, clear, nextId, option, srLabel, badge, timeEl, STATES, stateLabel, errorBox, focusKey, restoreFocus } from '../dom.js';
import { can } from '../roles.js';
import { poll } from '../poll.js';
import { decide } from '../actions.js';

const POLL_MS = 3000;
const PAGE_SIZES = [25, 50, 100, 200];

// Kept across visits to the page: filters, the page you were on, the selection.
const S = {
  filters: { state: '', system: '', component: '', q: '' },
  stack: [''], // cursors of the pages visited; the last is the current page
  limit: 50,
  selected: new Map(), // request_id → row
};

/** The gateway a row came through, when it carries one. */
export function viaText(r) {
  if (r.via === 'gateway' && r.gateway) return `gateway ${r.gateway.serial || r.gateway.device_id || ''}`.trim();
  return r.via || '—';
}

export function mount(main, ctx) {
  const user = ctx.user;
  const mayDecide = can(user, 'approve');
  let systems = [];
  let items = [];
  let next = '';
  let signature = '';
  let stopped = false;
  let loadSeq = 0;

  // ---- header and counts ----
  const countsEl = h('div', { class: 'counts', role: 'group', 'aria-label': 'Requests by state (select to filter)' });
  const errBox = errorBox();
  const updated = h('span', { class: 'muted small live-note' });

  // ---- filters ----
  const fState = h('select', { name: 'state' }, option('', 'All states'), STATES.map((s) => option(s, stateLabel(s))));
  const fSystem = h('select', { name: 'system' }, option('', 'All systems'));
  const fComponent = h('select', { name: 'component' }, option('', 'All components'));
  const fQ = h('input', { type: 'search', name: 'q', placeholder: 'Serial or hardware id (prefix)', autocomplete: 'off', spellcheck: 'false' });
  const clearBtn = h('button', { type: 'button', class: 'button subtle', text: 'Clear filters' });
  const labelled = (text, control) => {
    control.id = nextId('flt');
    return h('div', { class: 'field' }, h('label', { for: control.id, text }), control);
  };
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter requests' },
    labelled('State', fState), labelled('System', fSystem), labelled('Component', fComponent),
    h('div', { class: 'field field-grow' }, h('label', { for: (fQ.id = nextId('flt')), text: 'Search serial or hardware id' }), fQ),
    h('div', { class: 'field field-end' }, clearBtn));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    applyFilters();
  });

  // ---- bulk toolbar ----
  const selCount = h('span', { class: 'sel-count', 'aria-live': 'polite' });
  const approveSel = h('button', { type: 'button', class: 'button primary', text: 'Approve selected' });
  const rejectSel = h('button', { type: 'button', class: 'button danger-outline', text: 'Reject selected' });
  const clearSel = h('button', { type: 'button', class: 'button subtle', text: 'Clear selection' });
  const toolbar = h('div', { class: 'toolbar' },
    mayDecide ? [selCount, approveSel, rejectSel, clearSel] : null,
    h('span', { class: 'spacer' }), updated);

  // ---- table ----
  const selectAll = h('input', { type: 'checkbox', dataset: { fk: 'all' } });
  const cols = [
    mayDecide ? h('th', { scope: 'col', class: 'col-check' }, selectAll, srLabel(selectAll, 'Select all requests on this page')) : null,
    h('th', { scope: 'col', text: 'State' }),
    h('th', { scope: 'col', text: 'Serial' }),
    h('th', { scope: 'col', text: 'System' }),
    h('th', { scope: 'col', text: 'Component' }),
    h('th', { scope: 'col', text: 'Model' }),
    h('th', { scope: 'col', text: 'Firmware' }),
    h('th', { scope: 'col', text: 'Arrived via' }),
    h('th', { scope: 'col', text: 'Submitted' }),
    h('th', { scope: 'col', text: 'Updated' }),
    mayDecide ? h('th', { scope: 'col', text: 'Actions' }) : null,
  ].filter(Boolean);
  const tbody = h('tbody');
  const table = h('table', { class: 'table table-devices' },
    h('caption', { class: 'sr-only', text: 'Provisioning requests' }),
    h('thead', null, h('tr', null, cols)), tbody);
  const wrap = h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Requests table', tabindex: '0' }, table);

  // ---- pager ----
  const prev = h('button', { type: 'button', class: 'button', text: 'Previous page' });
  const nextBtn = h('button', { type: 'button', class: 'button', text: 'Next page' });
  const pageNo = h('span', { class: 'muted' });
  const perPage = h('select', null, PAGE_SIZES.map((n) => option(String(n), String(n), n === S.limit)));
  perPage.addEventListener('change', () => {
    S.limit = Number(perPage.value);
    S.stack = [''];
    S.selected.clear();
    signature = '';
    load();
  });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of requests' },
    h('span', { class: 'per-page' }, h('label', { for: (perPage.id = nextId('pp')), class: 'muted', text: 'Requests per page' }), perPage),
    prev, pageNo, nextBtn);

  main.append(
    h('div', { class: 'page-head' },
      h('div', null,
        h('h1', { text: 'Devices' }),
        h('p', { class: 'lead', text: 'Provisioning requests from connected devices, uploads and gateways. New requests and state changes appear here by themselves.' }))),
    countsEl, filters, errBox, toolbar, wrap, pager);

  // ---- behaviour ----
  function syncFilterControls() {
    fState.value = S.filters.state;
    fSystem.value = S.filters.system;
    fillComponents();
    fComponent.value = S.filters.component;
    fQ.value = S.filters.q;
  }

  function fillComponents() {
    const sys = systems.find((s) => s.name === fSystem.value);
    const names = new Set();
    for (const s of sys ? [sys] : systems) for (const c of s.components || []) names.add(c.name);
    const keep = fComponent.value || S.filters.component;
    fComponent.replaceChildren(option('', 'All components'), [...names].sort().map((n) => option(n, n)));
    fComponent.value = names.has(keep) ? keep : '';
  }

  function applyFilters() {
    const f = { state: fState.value, system: fSystem.value, component: fComponent.value, q: fQ.value.trim() };
    if (JSON.stringify(f) === JSON.stringify(S.filters)) return;
    S.filters = f;
    S.stack = [''];
    S.selected.clear();
    signature = '';
    load();
  }

  fState.addEventListener('change', applyFilters);
  fSystem.addEventListener('change', () => {
    fillComponents();
    applyFilters();
  });
  fComponent.addEventListener('change', applyFilters);
  let qTimer = null;
  fQ.addEventListener('input', () => {
    clearTimeout(qTimer);
    qTimer = setTimeout(applyFilters, 300);
  });
  clearBtn.addEventListener('click', () => {
    fState.value = '';
    fSystem.value = '';
    fillComponents();
    fComponent.value = '';
    fQ.value = '';
    applyFilters();
  });

  prev.addEventListener('click', () => {
    if (S.stack.length > 1) {
      S.stack.pop();
      S.selected.clear();
      signature = '';
      load().then(() => wrap.focus());
    }
  });
  nextBtn.addEventListener('click', () => {
    if (next) {
      S.stack.push(next);
      S.selected.clear();
      signature = '';
      load().then(() => wrap.focus());
    }
  });

  selectAll.addEventListener('change', () => {
    for (const r of items) {
      if (selectAll.checked) S.selected.set(r.request_id, r);
      else S.selected.delete(r.request_id);
    }
    renderRows(true);
    renderSelection();
  });
  clearSel.addEventListener('click', () => {
    S.selected.clear();
    renderRows(true);
    renderSelection();
  });

  function afterDecide(results) {
    for (const r of results) if (r.ok) S.selected.delete(r.row.request_id);
    signature = '';
    load();
  }
  approveSel.addEventListener('click', () => decide('approve', [...S.selected.values()], afterDecide));
  rejectSel.addEventListener('click', () => decide('reject', [...S.selected.values()], afterDecide));

  function renderSelection() {
    const n = S.selected.size;
    selCount.textContent = n === 0 ? 'No requests selected' : `${n} selected`;
    approveSel.disabled = n === 0;
    rejectSel.disabled = n === 0;
    clearSel.disabled = n === 0;
    const onPage = items.filter((r) => S.selected.has(r.request_id)).length;
    selectAll.checked = items.length > 0 && onPage === items.length;
    selectAll.indeterminate = onPage > 0 && onPage < items.length;
    selectAll.disabled = items.length === 0;
  }

  function renderCounts(counts) {
    const key = focusKey();
    const mk = (state, label, n) => {
      const b = h('button', {
        type: 'button',
        class: ['count', state ? `count-${state}` : 'count-all'],
        'aria-pressed': String(S.filters.state === state),
        dataset: { fk: `count-${state || 'all'}` },
      }, h('span', { class: 'count-label', text: label }), ' ', h('span', { class: 'count-n', text: String(n ?? 0) }));
      b.addEventListener('click', () => {
        fState.value = state;
        applyFilters();
      });
      return b;
    };
    const shown = STATES.filter((s) => s !== 'revoked' || (counts && counts.revoked));
    countsEl.replaceChildren(mk('', 'All', counts ? counts.total : 0),
      ...shown.map((s) => mk(s, stateLabel(s), counts ? counts[s] : 0)));
    restoreFocus(countsEl, key);
  }

  function row(r) {
    const id = r.request_id;
    const cells = [];
    if (mayDecide) {
      const cb = h('input', { type: 'checkbox', checked: S.selected.has(id), dataset: { fk: 'sel' } });
      cb.addEventListener('change', () => {
        if (cb.checked) S.selected.set(id, r);
        else S.selected.delete(id);
        tr.classList.toggle('is-selected', cb.checked);
        renderSelection();
      });
      cells.push(h('td', { class: 'col-check' }, cb, srLabel(cb, `Select ${r.serial}`)));
    }
    cells.push(h('td', null, badge(r.state)));
    cells.push(h('td', { class: 'col-serial' },
      h('a', { href: `#/devices/${id}`, text: r.serial, dataset: { fk: 'open' } }),
      r.duplicate_serial ? h('span', { class: 'tag tag-warn', text: 'duplicate serial' }) : null,
      r.kind === 'reprovision' ? h('span', { class: 'tag', text: 'reprovision' }) : null));
    cells.push(h('td', { text: r.system }));
    cells.push(h('td', { text: r.component }));
    cells.push(h('td', { text: r.model || '—' }));
    cells.push(h('td', { text: r.firmware || '—' }));
    cells.push(h('td', null, h('span', { class: `via via-${r.via}`, text: viaText(r) })));
    cells.push(h('td', { class: 'nowrap' }, timeEl(r.created)));
    cells.push(h('td', { class: 'nowrap' }, timeEl(r.updated)));
    if (mayDecide) {
      const acts = h('td', { class: 'col-actions' });
      if (r.state === 'pending') {
        const a = h('button', { type: 'button', class: 'button small', text: 'Approve', 'aria-label': `Approve ${r.serial}`, dataset: { fk: 'approve' } });
        const x = h('button', { type: 'button', class: 'button small danger-outline', text: 'Reject', 'aria-label': `Reject ${r.serial}`, dataset: { fk: 'reject' } });
        a.addEventListener('click', () => decide('approve', [r], afterDecide));
        x.addEventListener('click', () => decide('reject', [r], afterDecide));
        acts.append(a, x);
      }
      cells.push(acts);
    }
    const tr = h('tr', { dataset: { row: id }, class: S.selected.has(id) ? 'is-selected' : null }, cells);
    return tr;
  }

  function renderRows(force) {
    const sig = JSON.stringify(items);
    if (!force && sig === signature) return;
    signature = sig;
    const key = focusKey();
    if (items.length === 0) {
      const any = Object.values(S.filters).some(Boolean);
      tbody.replaceChildren(h('tr', null, h('td', { colspan: String(cols.length), class: 'empty' },
        any ? 'No requests match these filters.' : 'No requests yet. Connected devices appear here when they submit; disconnected devices once a technician uploads their request.')));
    } else {
      tbody.replaceChildren(...items.map(row));
    }
    // A selected row that changed keeps its selection with the new data.
    for (const r of items) if (S.selected.has(r.request_id)) S.selected.set(r.request_id, r);
    restoreFocus(tbody, key);
    if (key && key.fk === 'all') selectAll.focus();
  }

  function renderPager() {
    prev.disabled = S.stack.length <= 1;
    nextBtn.disabled = !next;
    pageNo.textContent = `Page ${S.stack.length}`;
    prev.hidden = S.stack.length <= 1 && !next;
    nextBtn.hidden = prev.hidden;
    pageNo.hidden = prev.hidden;
  }

  async function load() {
    const seq = ++loadSeq;
    const cursor = S.stack[S.stack.length - 1];
    try {
      const ans = await api.get('/api/v1/requests', { ...S.filters, limit: S.limit, cursor });
      if (stopped || seq !== loadSeq) return;
      errBox.show(null);
      items = ans.items || [];
      next = ans.next_cursor || '';
      renderCounts(ans.counts);
      renderRows(false);
      renderSelection();
      renderPager();
      const now = new Date();
      updated.textContent = `Live · updated ${now.toISOString().slice(11, 19)} UTC`;
    } catch (e) {
      if (stopped || seq !== loadSeq) return;
      if (e.status === 400 && S.stack.length > 1) {
        // A cursor the server no longer takes: back to the first page.
        S.stack = [''];
        return load();
      }
      errBox.show(e);
      updated.textContent = 'Not updated: see the error above';
    }
  }

  async function loadSystems() {
    try {
      const ans = await api.get('/api/v1/systems');
      systems = ans.items || [];
    } catch {
      systems = [];
    }
    if (stopped) return;
    fSystem.replaceChildren(option('', 'All systems'), systems.map((s) => option(s.name, s.display_name && s.display_name !== s.name ? `${s.display_name} (${s.name})` : s.name)));
    syncFilterControls();
  }

  syncFilterControls();
  renderSelection();
  renderCounts(null);
  loadSystems();
  load();
  const stopPoll = poll(load, POLL_MS);
  return () => {
    stopped = true;
    stopPoll();
    clearTimeout(qTimer);
  };
}
