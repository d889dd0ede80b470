// The Provisioning page, the disconnected path for technicians: upload the
// .mcpr files taken off devices (drag and drop or the file picker), see each
// one's verification result; download the certified profile (.mccp) and
// complete provisioning once it is installed.
import * as api from '../api.js';
import { h, nextId, badge, timeEl, fmtBytes, errorBox, toast, focusKey, restoreFocus } from '../dom.js';
import { can } from '../roles.js';
import { poll } from '../poll.js';
import { downloadProfile, complete } from '../actions.js';
import { viaText } from './devices.js';

const MAX_MCPR = 64 * 1024; // docs/api.md: .mcpr 64 KiB
const POLL_MS = 3000;
const PAGE = 50;
const PARALLEL = 3;

// The uploads of this visit stay listed when you look at another page.
const uploads = [];

const HINTS = {
  expired: 'The certificate that signed it has expired: the device must make a new request with a valid package.',
  bad_signature: 'The signature does not match the content: the file was changed or damaged after the device wrote it.',
  malformed: 'This is not a provisioning request, or it is damaged.',
  untrusted: 'It was not signed by a package of this service (unknown package or another Root of Trust).',
  template_mismatch: "The keys do not match the component's key templates.",
  unknown_component: 'The system has no such component.',
  duplicate: 'A device with this serial already exists.',
  too_large: 'A .mcpr is at most 64 KiB.',
  unsupported_media_type: 'The server did not take this file type.',
  proof_of_possession: 'A key signature (proof of possession) does not verify.',
  not_yet_valid: 'The signer certificate is not valid yet: check the device clock.',
};

export function mount(main, ctx) {
  const user = ctx.user;
  let stopped = false;

  if (!can(user, 'upload')) {
    main.append(h('h1', { text: 'Provisioning' }),
      h('p', { class: 'alert alert-info', text: 'Uploading requests and downloading profiles is for technicians and admins. Your role can follow requests on the Devices page.' }));
    return null;
  }

  // ---- upload ----
  const input = h('input', { type: 'file', multiple: true, accept: '.mcpr,application/vnd.custos.mcpr', class: 'file-input' });
  input.id = nextId('upl');
  const zone = h('div', { class: 'dropzone', 'aria-describedby': `${input.id}-hint` },
    h('p', { class: 'dropzone-title', text: 'Drop .mcpr files here' }),
    h('p', { class: 'muted', text: 'or' }),
    input,
    h('label', { for: input.id, class: 'button primary', text: 'Choose .mcpr files' }),
    h('p', { class: 'hint', id: `${input.id}-hint`, text: 'Provisioning requests (.mcpr, at most 64 KiB each) copied off the devices. Each file is verified by the server when it arrives.' }));
  const list = h('ul', { class: 'uploads', 'aria-label': 'Uploaded files', 'aria-live': 'polite' });

  // ---- ready to install ----
  const readyErr = errorBox();
  const q = h('input', { type: 'search', placeholder: 'Serial (prefix)', autocomplete: 'off', spellcheck: 'false' });
  q.id = nextId('rq');
  const readyBody = h('tbody');
  const readyNote = h('p', { class: 'status-line', role: 'status' });
  const more = h('button', { type: 'button', class: 'button', text: 'Show more', hidden: true });
  const readyTable = h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Certified requests', tabindex: '0' },
    h('table', { class: 'table' },
      h('thead', null, h('tr', null, ['State', 'Serial', 'System', 'Component', 'Arrived via', 'Certified', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      readyBody));

  main.append(
    h('div', { class: 'page-head' }, h('div', null,
      h('h1', { text: 'Provisioning' }),
      h('p', { class: 'lead', text: 'For devices without a connection: upload the request taken off the device; once approved, download the certified profile, install it on the device, then complete provisioning.' }))),
    h('section', { class: 'card card-wide', 'aria-labelledby': 'up-h' },
      h('h2', { id: 'up-h', text: '1. Upload requests' }), zone, list),
    h('section', { class: 'card card-wide', 'aria-labelledby': 'ready-h' },
      h('h2', { id: 'ready-h', text: '2. Download profiles and complete provisioning' }),
      h('p', { class: 'muted', text: 'Certified requests, newest first. Install the profile on the device (custos-device install), then select Complete provisioning.' }),
      h('div', { class: 'filters' }, h('div', { class: 'field field-grow' }, h('label', { for: q.id, text: 'Search serial' }), q)),
      readyErr, readyNote, readyTable, more));

  // ---- uploads ----
  function renderUpload(u) {
    const status = [];
    if (u.phase === 'refused-local') {
      status.push(h('p', { class: 'upload-error' }, h('strong', { text: 'Not sent: ' }), u.message));
    } else if (u.phase === 'sending') {
      status.push(h('p', { class: 'muted', text: 'Verifying…' }));
    } else if (u.phase === 'error') {
      const e = u.error;
      status.push(h('p', { class: 'upload-error' },
        h('strong', { text: 'Refused: ' }), e.message || 'the server refused the file',
        ' ', h('span', { class: 'code', text: e.code || '' }),
        e.field ? h('span', { class: 'code', text: ` · ${e.field}` }) : null));
      if (HINTS[e.code]) status.push(h('p', { class: 'hint', text: HINTS[e.code] }));
    } else if (u.phase === 'done') {
      const r = u.request;
      status.push(h('p', { class: 'upload-ok' },
        h('strong', { text: u.created ? 'Verified and accepted. ' : 'Already uploaded. ' }),
        'Serial ', h('a', { href: `#/devices/${r.request_id}`, text: r.serial }),
        ` (${r.component} of ${r.system}) `, badge(r.state),
        r.state === 'pending' ? ' — waiting for an approver.' : ''));
      if (r.duplicate_serial) status.push(h('p', { class: 'hint warn', text: 'Another request has the same serial: the approver will see it flagged.' }));
    }
    const li = u.el || h('li', { class: 'upload' });
    li.className = `upload upload-${u.phase}`;
    li.replaceChildren(
      h('div', { class: 'upload-file' }, h('span', { class: 'mono', text: u.name }), h('span', { class: 'muted small', text: fmtBytes(u.size) })),
      h('div', { class: 'upload-status' }, status));
    u.el = li;
    return li;
  }

  function renderUploads() {
    list.replaceChildren(...uploads.map(renderUpload));
  }

  async function send(u) {
    try {
      const buf = await u.file.arrayBuffer();
      // 201 for a new request, 200 for one the server already knows.
      const ans = await api.call('POST', '/api/v1/requests', { body: buf, type: 'application/vnd.custos.mcpr', withStatus: true });
      u.phase = 'done';
      u.created = ans.status === 201;
      u.request = ans.data;
    } catch (e) {
      u.phase = 'error';
      u.error = { code: e.code || 'error', message: e.message || String(e), field: e.field };
    }
    u.file = null;
    if (u.el && u.el.isConnected) renderUpload(u);
  }

  async function addFiles(files) {
    const fresh = [];
    for (const f of files) {
      const u = { name: f.name, size: f.size, file: f, phase: 'sending' };
      if (f.size > MAX_MCPR) {
        u.phase = 'refused-local';
        u.message = `${f.name} is ${fmtBytes(f.size)}; a provisioning request (.mcpr) is at most 64 KiB. Check that this is the request file from the device.`;
        u.file = null;
      } else if (f.size === 0) {
        u.phase = 'refused-local';
        u.message = `${f.name} is empty.`;
        u.file = null;
      } else {
        fresh.push(u);
      }
      uploads.unshift(u);
    }
    renderUploads();
    let i = 0;
    const worker = async () => {
      while (i < fresh.length) await send(fresh[i++]);
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, fresh.length) }, worker));
    const ok = fresh.filter((u) => u.phase === 'done').length;
    if (fresh.length > 1) toast(`${ok} of ${fresh.length} requests accepted.`, ok === fresh.length ? 'ok' : 'error');
    loadReady();
  }

  input.addEventListener('change', () => {
    const files = [...input.files];
    input.value = '';
    if (files.length) addFiles(files);
  });
  zone.addEventListener('dragenter', (ev) => {
    ev.preventDefault();
    zone.classList.add('is-over');
  });
  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = 'copy';
    zone.classList.add('is-over');
  });
  zone.addEventListener('dragleave', (ev) => {
    if (!zone.contains(ev.relatedTarget)) zone.classList.remove('is-over');
  });
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('is-over');
    const files = ev.dataTransfer ? [...ev.dataTransfer.files] : [];
    if (files.length) addFiles(files);
  });

  // ---- ready to install ----
  let readyItems = [];
  let readyNext = '';
  let readySig = '';
  let pages = 1;

  function readyRow(r) {
    const dlb = h('button', { type: 'button', class: 'button small', text: 'Download profile', 'aria-label': `Download profile of ${r.serial}`, dataset: { fk: 'dl' } });
    const cb = h('button', { type: 'button', class: 'button small primary', text: 'Complete provisioning', 'aria-label': `Complete provisioning of ${r.serial}`, dataset: { fk: 'complete' } });
    dlb.addEventListener('click', async () => {
      readyErr.show(null);
      dlb.disabled = true;
      try {
        const name = await downloadProfile(r);
        readyNote.textContent = `Downloaded ${name}. Install it on device ${r.serial}, then complete provisioning.`;
      } catch (e) {
        readyErr.show(e);
      } finally {
        dlb.disabled = false;
      }
    });
    cb.addEventListener('click', async () => {
      readyErr.show(null);
      try {
        const ans = await complete(r);
        if (ans) {
          readyNote.replaceChildren(`Device ${ans.serial} is `, badge(ans.state), '.');
        }
      } catch (e) {
        readyErr.show(e);
      }
      readySig = '';
      loadReady();
    });
    return h('tr', { dataset: { row: r.request_id } },
      h('td', null, badge(r.state)),
      h('td', null, h('a', { href: `#/devices/${r.request_id}`, text: r.serial })),
      h('td', { text: r.system }),
      h('td', { text: r.component }),
      h('td', { text: viaText(r) }),
      h('td', { class: 'nowrap' }, timeEl(r.updated)),
      h('td', { class: 'col-actions' }, dlb, cb));
  }

  function renderReady() {
    const sig = JSON.stringify(readyItems);
    if (sig === readySig) return;
    readySig = sig;
    const key = focusKey();
    if (readyItems.length === 0) {
      readyBody.replaceChildren(h('tr', null, h('td', { colspan: '7', class: 'empty', text: q.value.trim() ? 'No certified request with this serial.' : 'No certified requests waiting. Requests appear here once an approver approves them.' })));
    } else {
      readyBody.replaceChildren(...readyItems.map(readyRow));
    }
    restoreFocus(readyBody, key);
    more.hidden = !readyNext;
  }

  async function loadReady() {
    try {
      // Reload as many pages as are shown, so polling keeps "Show more" rows.
      let cursor = '';
      let all = [];
      let nextCur = '';
      for (let p = 0; p < pages; p++) {
        const ans = await api.get('/api/v1/requests', { state: 'certified', q: q.value.trim(), limit: PAGE, cursor });
        all = all.concat(ans.items || []);
        nextCur = ans.next_cursor || '';
        if (!nextCur) break;
        cursor = nextCur;
      }
      if (stopped) return;
      readyErr.show(null);
      readyItems = all;
      readyNext = nextCur;
      renderReady();
    } catch (e) {
      if (!stopped) readyErr.show(e);
    }
  }

  let qTimer = null;
  q.addEventListener('input', () => {
    clearTimeout(qTimer);
    qTimer = setTimeout(() => {
      pages = 1;
      loadReady();
    }, 300);
  });
  more.addEventListener('click', () => {
    pages += 1;
    loadReady();
  });

  renderUploads();
  loadReady();
  const stopPoll = poll(loadReady, POLL_MS);
  return () => {
    stopped = true;
    stopPoll();
    clearTimeout(qTimer);
    for (const u of uploads) u.el = null;
  };
}
