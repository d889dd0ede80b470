// One request (GET /api/v1/requests/{id}): identity, metadata, key
// templates, certificates issued, the signer, and its history from the audit
// trail; with the actions the role allows. Polls while open.
import * as api from '../api.js';
import { h, clear, badge, timeEl, errorBox, toast, focusKey, restoreFocus, isPast } from '../dom.js';
import { can } from '../roles.js';
import { poll } from '../poll.js';
import { decide, downloadProfile, complete } from '../actions.js';
import { viaText } from './devices.js';

const POLL_MS = 3000;

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [
    h('dt', { text: k }),
    h('dd', null, v === undefined || v === null || v === '' ? h('span', { class: 'muted', text: '—' }) : v),
  ]));
}

function mono(text) {
  return h('span', { class: 'mono', text });
}

/** "ab12cd…" fingerprints in groups a person can compare. */
function fingerprint(hex) {
  if (!hex) return '—';
  const clean = String(hex).replace(/[^0-9a-fA-F]/g, '').toUpperCase();
  return clean.match(/.{1,2}/g)?.join(':') || hex;
}

export function detailText(detail) {
  if (!detail || typeof detail !== 'object') return '';
  return Object.entries(detail)
    .filter(([, v]) => v !== '' && v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join(' · ');
}

export function mount(main, ctx, { params }) {
  const id = params[0];
  const user = ctx.user;
  let signature = '';
  let stopped = false;
  const errBox = errorBox();
  const actionErr = errorBox();
  const body = h('div', { class: 'detail' });
  const head = h('div', { class: 'page-head' });

  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/devices', text: '← All devices' })),
    head, errBox, actionErr, body);
  head.append(h('h1', { text: 'Request', dataset: { fk: 'title' } }));

  async function act(fn) {
    actionErr.show(null);
    try {
      await fn();
    } catch (e) {
      actionErr.show(e);
    }
    signature = '';
    load();
  }

  function actions(r) {
    const out = [];
    if (can(user, 'approve') && r.state === 'pending') {
      const a = h('button', { type: 'button', class: 'button primary', text: 'Approve', dataset: { fk: 'approve' } });
      const x = h('button', { type: 'button', class: 'button danger-outline', text: 'Reject', dataset: { fk: 'reject' } });
      a.addEventListener('click', () => decide('approve', [r], () => { signature = ''; load(); }));
      x.addEventListener('click', () => decide('reject', [r], () => { signature = ''; load(); }));
      out.push(a, x);
    }
    if (can(user, 'upload') && (r.state === 'certified' || r.state === 'provisioned')) {
      const dlb = h('button', { type: 'button', class: 'button', text: 'Download profile (.mccp)', dataset: { fk: 'profile' } });
      dlb.addEventListener('click', () => act(async () => {
        await downloadProfile(r);
      }));
      out.push(dlb);
    }
    if (can(user, 'upload') && r.state === 'certified') {
      const c = h('button', { type: 'button', class: 'button primary', text: 'Complete provisioning', dataset: { fk: 'complete' } });
      c.addEventListener('click', () => act(async () => {
        const ans = await complete(r);
        if (ans) toast(`${r.serial} is ${ans.state}.`);
      }));
      out.push(c);
    }
    return out;
  }

  function render(r) {
    const key = focusKey();
    document.title = `${r.serial} · Devices · Custos console`;
    clear(head).append(
      h('div', null,
        h('h1', { tabindex: '-1', dataset: { fk: 'title' } }, `Device ${r.serial} `, badge(r.state)),
        h('p', { class: 'lead' }, `${r.component} of ${r.system} · ${r.kind === 'reprovision' ? 'reprovisioning request' : 'initial request'} · arrived via ${viaText(r)}`)),
      h('div', { class: 'page-actions' }, actions(r)));
    const ident = r.identity || {};
    const manu = ident.manufacturer && Object.keys(ident.manufacturer).length
      ? dl(Object.entries(ident.manufacturer).map(([k, v]) => [k, String(v)])) : null;
    const meta = r.metadata && Object.keys(r.metadata).length
      ? dl(Object.entries(r.metadata).map(([k, v]) => [k, String(v)]))
      : h('p', { class: 'muted', text: 'No metadata.' });
    const sections = [];
    sections.push(h('section', { class: 'card' },
      h('h2', { text: 'Identity' }),
      dl([
        ['Serial', mono(ident.serial || r.serial)],
        ['Hardware id', ident.hardware_id || r.hardware_id ? mono(ident.hardware_id || r.hardware_id) : ''],
        ['Model', ident.model || r.model],
        ['Firmware', ident.firmware || r.firmware],
        ['System', r.system],
        ['Component', r.component],
        ['Request id', mono(r.request_id)],
        ['Device id', mono(r.device_id)],
        ['Kind', r.kind],
        ['Arrived via', viaText(r)],
        r.gateway ? ['Gateway', h('span', null, mono(r.gateway.serial || ''), ' ', h('span', { class: 'muted', text: r.gateway.device_id || '' }))] : null,
        ['Submitted', timeEl(r.created, { seconds: true })],
        ['Updated', timeEl(r.updated, { seconds: true })],
        ['Request expires', h('span', null, timeEl(r.expires), isPast(r.expires) ? h('span', { class: 'tag tag-warn', text: 'past' }) : null)],
        r.reason ? ['Reason', r.reason] : null,
        r.duplicate_serial ? ['Duplicate serial', h('span', { class: 'tag tag-warn', text: 'another request has this serial' })] : null,
      ]),
      manu ? [h('h3', { text: 'Manufacturer' }), manu] : null));
    sections.push(h('section', { class: 'card' },
      h('h2', { text: 'Key templates' }),
      (r.keys || []).length === 0 ? h('p', { class: 'muted', text: 'No keys.' }) :
        h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Key templates', tabindex: '0' },
          h('table', { class: 'table' },
            h('thead', null, h('tr', null, ['Template', 'Algorithm', 'Usage'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', null, (r.keys || []).map((k) => h('tr', null,
              h('td', { text: k.name }), h('td', { text: k.alg }), h('td', { text: (k.usage || []).join(', ') || '—' }))))))));
    const s = r.signer || {};
    sections.push(h('section', { class: 'card' },
      h('h2', { text: 'Signed by' }),
      dl([
        ['Signer', s.kind === 'bootstrap' ? 'bootstrap certificate of a provisioning package' : s.kind === 'device' ? "the device's current certificate" : s.kind],
        ['Subject', s.subject ? mono(s.subject) : ''],
        ['Serial', s.serial ? mono(s.serial) : ''],
        s.package_id ? ['Package', mono(s.package_id)] : null,
        ['Signer expires', s.not_after ? h('span', null, timeEl(s.not_after), isPast(s.not_after) ? h('span', { class: 'tag tag-warn', text: 'expired' }) : null) : ''],
      ]),
      h('p', { class: 'hint', text: 'A request expires with the certificate that signed it.' })));
    const certs = r.certificates || [];
    sections.push(h('section', { class: 'card card-wide' },
      h('h2', { text: 'Certificates issued' }),
      certs.length === 0 ? h('p', { class: 'muted', text: r.state === 'pending' || r.state === 'approved' ? 'None yet: certificates are issued on approval.' : 'None.' }) :
        h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Certificates issued', tabindex: '0' },
          h('table', { class: 'table' },
            h('thead', null, h('tr', null, ['Template', 'Subject', 'Serial', 'Valid from', 'Valid until', 'SHA-256 fingerprint'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', null, certs.map((c) => h('tr', null,
              h('td', { text: c.template || '—' }),
              h('td', { class: 'wrap' }, mono(c.subject || '')),
              h('td', { class: 'wrap' }, mono(c.serial || '')),
              h('td', { class: 'nowrap' }, timeEl(c.not_before)),
              h('td', { class: 'nowrap' }, timeEl(c.not_after)),
              h('td', { class: 'wrap fp' }, mono(fingerprint(c.sha256))))))))));
    sections.push(h('section', { class: 'card card-wide' }, h('h2', { text: 'Metadata' }), meta));
    const hist = r.history || [];
    sections.push(h('section', { class: 'card card-wide' },
      h('h2', { text: 'History' }),
      hist.length === 0 ? h('p', { class: 'muted', text: 'No entries.' }) :
        h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'History', tabindex: '0' },
          h('table', { class: 'table' },
            h('thead', null, h('tr', null, ['#', 'Time', 'Who', 'From', 'Action', 'Detail'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', null, hist.map((a) => h('tr', null,
              h('td', { class: 'num', text: String(a.seq) }),
              h('td', { class: 'nowrap' }, timeEl(a.time, { seconds: true })),
              h('td', { text: a.actor }),
              h('td', { class: 'muted', text: a.from || '' }),
              h('td', null, h('span', { class: 'action', text: a.action })),
              h('td', { class: 'wrap small', text: detailText(a.detail) }))))))));
    clear(body).append(...sections);
    restoreFocus(head, key);
  }

  async function load() {
    try {
      const r = await api.get(`/api/v1/requests/${api.enc(id)}`);
      if (stopped) return;
      errBox.show(null);
      const sig = JSON.stringify(r);
      if (sig !== signature) {
        signature = sig;
        render(r);
      }
    } catch (e) {
      if (stopped) return;
      if (e.status === 404) {
        clear(head).append(h('h1', { tabindex: '-1', text: 'No such request' }));
        clear(body);
        errBox.show({ message: `No request with id ${id}.`, code: e.code });
      } else {
        errBox.show(e);
      }
    }
  }

  load();
  const stop = poll(load, POLL_MS);
  return () => {
    stopped = true;
    stop();
  };
}
