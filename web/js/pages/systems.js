// The Systems page: the systems with their components and key templates;
// for admins the auto-approval policy, provisioning packages, gateways and
// operators; mock device files for admins and technicians.
import * as api from '../api.js';
import { h, add, clear, nextId, field, setFieldError, option, timeEl, isPast, errorBox, toast, saveBlob } from '../dom.js';
import { can, ROLE_LABEL } from '../roles.js';

const MODE_LABEL = {
  manual: 'Manual — an approver decides each request',
  package: 'Package — approve every request signed by a valid package of this system',
  allow_list: 'Allow-list — approve serials on the allow-list; others wait for an approver',
};
const MODE_SHORT = { manual: 'manual', package: 'package', allow_list: 'allow-list' };
const SERIAL_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

export function mount(main, ctx, { params }) {
  if (params.length) return systemView(main, ctx, params[0]);
  return listView(main, ctx);
}

// ---- the list ----------------------------------------------------------------------

function listView(main, ctx) {
  const user = ctx.user;
  const admin = can(user, 'admin');
  let stopped = false;
  const err = errorBox();
  const tbody = h('tbody', null, h('tr', null, h('td', { colspan: '5', class: 'muted', text: 'Loading…' })));
  main.append(
    h('div', { class: 'page-head' },
      h('div', null,
        h('h1', { text: 'Systems' }),
        h('p', { class: 'lead', text: 'A system is a product; its components are the device types in it, each with the key templates its devices get certificates for.' })),
      admin ? h('div', { class: 'page-actions' }, h('a', { class: 'button primary', href: '#/systems/new', text: 'Create system' })) : null),
    err,
    h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Systems', tabindex: '0' },
      h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['System', 'Display name', 'Components', 'Auto-approval', 'Cloud URL'].map((t) => h('th', { scope: 'col', text: t })))),
        tbody)));

  (async () => {
    try {
      const ans = await api.get('/api/v1/systems');
      if (stopped) return;
      const items = ans.items || [];
      if (!items.length) {
        tbody.replaceChildren(h('tr', null, h('td', { colspan: '5', class: 'empty', text: admin ? 'No systems yet. Create the first one.' : 'No systems yet. A security admin creates them.' })));
        return;
      }
      const modes = await Promise.all(items.map((s) => api.get(`/api/v1/systems/${api.enc(s.name)}/policy`).then((p) => p.mode, () => '')));
      if (stopped) return;
      tbody.replaceChildren(...items.map((s, i) => h('tr', null,
        h('td', null, h('a', { href: `#/systems/${s.name}`, text: s.name })),
        h('td', { text: s.display_name || s.name }),
        h('td', { text: (s.components || []).map((c) => c.name).join(', ') }),
        h('td', { text: MODE_SHORT[modes[i]] || modes[i] || '—' }),
        h('td', { class: 'wrap', text: (s.services && s.services.cloud_url) || '—' }))));
    } catch (e) {
      if (!stopped) err.show(e);
    }
  })();

  if (admin) {
    gatewaysSection(main, () => stopped);
    operatorsSection(main, () => stopped);
  }
  return () => {
    stopped = true;
  };
}

/** Gateways (when the server has the endpoint): list, disable, enable. */
function gatewaysSection(main, isStopped) {
  const sec = h('section', { class: 'card card-wide', hidden: true, 'aria-labelledby': 'gw-h' });
  const err = errorBox();
  const tbody = h('tbody');
  sec.append(h('h2', { id: 'gw-h', text: 'Gateways' }),
    h('p', { class: 'muted', text: 'Hubs that forward the requests of the devices behind them. A disabled gateway cannot forward.' }),
    err,
    h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Gateways', tabindex: '0' },
      h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['Serial', 'System', 'Device id', 'Status', 'Last seen', 'Forwarded', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
        tbody)));
  main.append(sec);
  async function load() {
    let ans;
    try {
      ans = await api.get('/api/v1/gateways');
    } catch (e) {
      if (e.status === 404 || e.status === 405) return; // not on this server
      sec.hidden = false;
      err.show(e);
      return;
    }
    if (isStopped()) return;
    sec.hidden = false;
    err.show(null);
    const items = ans.items || [];
    if (!items.length) {
      tbody.replaceChildren(h('tr', null, h('td', { colspan: '7', class: 'empty', text: 'No gateways have registered.' })));
      return;
    }
    tbody.replaceChildren(...items.map((g) => {
      const enabled = g.enabled !== false;
      const b = h('button', {
        type: 'button',
        class: enabled ? 'button small danger-outline' : 'button small',
        text: enabled ? 'Disable' : 'Enable',
        'aria-label': `${enabled ? 'Disable' : 'Enable'} gateway ${g.serial || g.device_id}`,
      });
      b.addEventListener('click', async () => {
        b.disabled = true;
        try {
          await api.post(`/api/v1/gateways/${api.enc(g.device_id)}/${enabled ? 'disable' : 'enable'}`);
          toast(`Gateway ${g.serial || g.device_id} ${enabled ? 'disabled' : 'enabled'}.`);
        } catch (e) {
          err.show(e);
        }
        load();
      });
      return h('tr', null,
        h('td', { text: g.serial || '—' }),
        h('td', { text: g.system || '—' }),
        h('td', null, h('span', { class: 'mono small', text: g.device_id })),
        h('td', null, h('span', { class: enabled ? 'badge badge-provisioned' : 'badge badge-expired', text: enabled ? 'enabled' : 'disabled' })),
        h('td', { class: 'nowrap' }, timeEl(g.last_seen)),
        h('td', { class: 'num', text: String(g.forwarded ?? 0) }),
        h('td', null, b));
    }));
  }
  load();
}

/** Operators: list and create (the password is shown once). */
function operatorsSection(main, isStopped) {
  const err = errorBox();
  const tbody = h('tbody');
  const uname = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', required: true });
  const role = h('select', null, ['approver', 'technician', 'auditor', 'admin'].map((r) => option(r, ROLE_LABEL[r])));
  const pw = h('input', { type: 'password', autocomplete: 'new-password' });
  const result = h('div', { class: 'once', hidden: true, role: 'status' });
  const submit = h('button', { type: 'submit', class: 'button', text: 'Add operator' });
  const fu = field('Username', uname, { errorFor: 'username' });
  const fr = field('Role', role, { errorFor: 'role' });
  const fp = field('Password (optional)', pw, { hint: 'Leave empty to generate one, shown once.', errorFor: 'password' });
  const form = h('form', { class: 'inline-form', novalidate: true, 'aria-label': 'Add an operator' }, fu.wrap, fr.wrap, fp.wrap, h('div', { class: 'field field-end' }, submit));
  main.append(h('section', { class: 'card card-wide', 'aria-labelledby': 'ops-h' },
    h('h2', { id: 'ops-h', text: 'Operators' }),
    err,
    h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Operators', tabindex: '0' },
      h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['Username', 'Role', 'Created', 'Status'].map((t) => h('th', { scope: 'col', text: t })))),
        tbody)),
    h('h3', { text: 'Add an operator' }), form, result));
  async function load() {
    try {
      const ans = await api.get('/api/v1/users');
      if (isStopped()) return;
      tbody.replaceChildren(...(ans.items || []).map((u) => h('tr', null,
        h('td', { text: u.username }),
        h('td', { text: ROLE_LABEL[u.role] || u.role }),
        h('td', { class: 'nowrap' }, timeEl(u.created)),
        h('td', { text: u.disabled ? 'disabled' : 'active' }))));
    } catch (e) {
      err.show(e);
    }
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const c of [uname, role, pw]) setFieldError(c, '');
    result.hidden = true;
    if (!uname.value.trim()) {
      setFieldError(uname, 'Enter a username.');
      uname.focus();
      return;
    }
    submit.disabled = true;
    try {
      const body = { username: uname.value.trim(), role: role.value };
      if (pw.value) body.password = pw.value;
      const ans = await api.post('/api/v1/users', body);
      pw.value = '';
      uname.value = '';
      add(clear(result), h('p', null, h('strong', { text: `Operator ${ans.username} added` }), ` as ${ROLE_LABEL[ans.role] || ans.role}.`),
        ans.password ? [h('p', { text: 'Password (shown only now — give it to them securely):' }), h('p', null, h('code', { class: 'secret', text: ans.password }))] : null);
      result.hidden = false;
      load();
    } catch (e) {
      const target = { username: uname, role, password: pw }[e.field];
      if (target) setFieldError(target, e.message);
      else err.show(e);
    } finally {
      submit.disabled = false;
    }
  });
  load();
}

// ---- one system ------------------------------------------------------------------------

function systemView(main, ctx, name) {
  const user = ctx.user;
  const admin = can(user, 'admin');
  let stopped = false;
  const err = errorBox();
  const head = h('div', { class: 'page-head' }, h('h1', { text: name }));
  const body = h('div', { class: 'detail' });
  main.append(h('p', { class: 'crumbs' }, h('a', { href: '#/systems', text: '← All systems' })), head, err, body);

  (async () => {
    let sys;
    try {
      sys = await api.get(`/api/v1/systems/${api.enc(name)}`);
    } catch (e) {
      if (stopped) return;
      clear(head).append(h('h1', { text: e.status === 404 ? 'No such system' : name }));
      err.show(e);
      return;
    }
    if (stopped) return;
    const focused = document.activeElement && document.activeElement.tagName === 'H1';
    document.title = `${sys.name} · Systems · Custos console`;
    const h1 = h('h1', { tabindex: '-1' }, sys.display_name || sys.name, ' ', h('span', { class: 'h1-sub mono', text: sys.name }));
    add(clear(head), h('div', null, h1,
      h('p', { class: 'lead', text: `${(sys.components || []).length} component(s) · renewal window ${sys.renewal_window_days ?? 30} days` })),
    admin ? h('div', { class: 'page-actions' }, h('a', { class: 'button', href: `#/systems/${sys.name}/edit`, text: 'Edit system' })) : null);
    if (focused) h1.focus();
    body.append(componentsCard(sys), servicesCard(sys));
    body.append(policyCard(sys, admin));
    if (admin) body.append(packagesCard(sys));
    if (can(user, 'mock')) body.append(mockCard(sys));
  })();

  return () => {
    stopped = true;
  };
}

function componentsCard(sys) {
  return h('section', { class: 'card card-wide', 'aria-labelledby': 'comp-h' },
    h('h2', { id: 'comp-h', text: 'Components and key templates' }),
    (sys.components || []).map((c) => h('div', { class: 'component' },
      h('h3', null, 'Component ', h('span', { class: 'mono', text: c.name })),
      h('div', { class: 'table-wrap', role: 'region', 'aria-label': `Key templates of ${c.name}`, tabindex: '0' },
        h('table', { class: 'table' },
          h('thead', null, h('tr', null, ['Template', 'Algorithm', 'Usage', 'Validity', 'Subject'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', null, (c.templates || []).map((t) => h('tr', null,
            h('td', { class: 'mono', text: t.name }),
            h('td', { text: t.algorithm || 'ecdsa-p256' }),
            h('td', { text: (t.usage || []).join(', ') }),
            h('td', { class: 'nowrap', text: `${t.valid_days ?? 365} days` }),
            h('td', { class: 'wrap mono small', text: t.subject || 'CN={serial},OU={component},O={system}' })))))))));
}

function servicesCard(sys) {
  const s = sys.services || {};
  return h('section', { class: 'card card-wide', 'aria-labelledby': 'svc-h' },
    h('h2', { id: 'svc-h', text: 'Services' }),
    h('dl', { class: 'facts' },
      h('dt', { text: 'Cloud URL' }), h('dd', { class: 'wrap', text: s.cloud_url || '—' }),
      h('dt', { text: 'Gateways' }), h('dd', { class: 'wrap', text: (s.gateways || []).join(', ') || '—' }),
      h('dt', { text: 'Renewal window' }), h('dd', { text: `${sys.renewal_window_days ?? 30} days` })));
}

/** Read a text file of serials, one per line ('#' comments, blanks skipped). */
async function readSerials(file) {
  if (file.size > 4 * 1024 * 1024) throw new Error(`${file.name} is over 4 MiB.`);
  const text = await file.text();
  const serials = [];
  const bad = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const s = line.replace(/#.*$/, '').trim();
    if (!s) return;
    if (s.length > 64 || !SERIAL_RE.test(s)) bad.push(i + 1);
    else serials.push(s);
  });
  return { serials: [...new Set(serials)], bad };
}

function policyCard(sys, admin) {
  const err = errorBox();
  const status = h('p', { class: 'status-line', role: 'status' });
  const modeSel = h('select', { name: 'mode' }, Object.entries(MODE_LABEL).map(([v, l]) => option(v, l)));
  const counts = h('dl', { class: 'facts' });
  const card = h('section', { class: 'card card-wide', 'aria-labelledby': 'pol-h' },
    h('h2', { id: 'pol-h', text: 'Auto-approval policy' }), err);
  let policy = null;

  function renderCounts() {
    const sample = (arr) => (arr && arr.length ? ` (${arr.slice(0, 5).join(', ')}${arr.length > 5 ? ', …' : ''})` : '');
    counts.replaceChildren(
      h('dt', { text: 'Mode' }), h('dd', { text: MODE_LABEL[policy.mode] || policy.mode }),
      h('dt', { text: 'Allow-list' }), h('dd', { text: `${policy.allow_count ?? 0} serial(s)${sample(policy.allow)}` }),
      h('dt', { text: 'Deny-list' }), h('dd', { text: `${policy.deny_count ?? 0} serial(s)${sample(policy.deny)}` }));
  }

  async function load() {
    try {
      policy = await api.get(`/api/v1/systems/${api.enc(sys.name)}/policy`);
      modeSel.value = policy.mode;
      renderCounts();
    } catch (e) {
      err.show(e);
    }
  }

  async function save(body, what) {
    err.show(null);
    status.textContent = '';
    try {
      const ans = await api.put(`/api/v1/systems/${api.enc(sys.name)}/policy`, { mode: policy ? policy.mode : 'manual', ...body });
      policy = { ...policy, ...ans };
      await load();
      status.textContent = what;
      return true;
    } catch (e) {
      err.show(e);
      return false;
    }
  }

  card.append(counts);
  if (!admin) {
    card.append(h('p', { class: 'muted', text: 'Only a security admin changes the policy.' }));
    load();
    return card;
  }

  const modeForm = h('form', { class: 'inline-form', 'aria-label': 'Set the approval mode' },
    field('Approval mode', modeSel).wrap,
    h('div', { class: 'field field-end' }, h('button', { type: 'submit', class: 'button primary', text: 'Save mode' })));
  modeForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    save({ mode: modeSel.value }, `Approval mode is now ${MODE_SHORT[modeSel.value]}.`);
  });

  function listForm(kind) {
    const label = kind === 'allow' ? 'Allow-list file' : 'Deny-list file';
    const input = h('input', { type: 'file', accept: '.txt,.csv,text/plain' });
    const f = field(label, input, { hint: 'A text file, one serial per line; it replaces the current list.', errorFor: kind });
    const upload = h('button', { type: 'button', class: 'button', text: kind === 'allow' ? 'Upload allow-list' : 'Upload deny-list' });
    const clearBtn = h('button', { type: 'button', class: 'button subtle', text: kind === 'allow' ? 'Empty the allow-list' : 'Empty the deny-list' });
    upload.addEventListener('click', async () => {
      setFieldError(input, '');
      const file = input.files && input.files[0];
      if (!file) {
        setFieldError(input, 'Choose a file first.');
        input.focus();
        return;
      }
      try {
        const { serials, bad } = await readSerials(file);
        if (bad.length) {
          setFieldError(input, `Not a serial on line${bad.length > 1 ? 's' : ''} ${bad.slice(0, 10).join(', ')}${bad.length > 10 ? ', …' : ''} (letters, digits, . _ : - ; at most 64).`);
          return;
        }
        const ok = await save({ [kind]: serials }, `${kind === 'allow' ? 'Allow' : 'Deny'}-list replaced: ${serials.length} serial(s).`);
        if (ok) input.value = '';
      } catch (e) {
        setFieldError(input, e.message);
      }
    });
    clearBtn.addEventListener('click', () => save({ [kind]: [] }, `${kind === 'allow' ? 'Allow' : 'Deny'}-list emptied.`));
    return h('div', { class: 'list-upload' }, f.wrap, h('div', { class: 'button-row' }, upload, clearBtn));
  }

  card.append(modeForm, h('div', { class: 'two-col' }, listForm('allow'), listForm('deny')), status);
  load();
  return card;
}

function packagesCard(sys) {
  const err = errorBox();
  const days = h('input', { type: 'number', min: '1', max: '36500', step: '1', value: '365', inputmode: 'numeric' });
  const gen = h('input', { type: 'radio', name: `pp-${sys.name}`, value: 'generate', checked: true });
  const set = h('input', { type: 'radio', name: `pp-${sys.name}`, value: 'set' });
  gen.id = nextId('pp');
  set.id = nextId('pp');
  const pass = h('input', { type: 'password', autocomplete: 'new-password', disabled: true });
  const fDays = field('Valid for (days)', days, { hint: 'The bootstrap certificate, and so every request made with this package, expires after this.', errorFor: 'valid_days' });
  const fPass = field('Passphrase', pass, { errorFor: 'passphrase' });
  const submit = h('button', { type: 'submit', class: 'button primary', text: 'Create package' });
  const result = h('div', { class: 'once', hidden: true });
  const form = h('form', { class: 'stack-form', novalidate: true, 'aria-label': 'Create a provisioning package' },
    fDays.wrap,
    h('fieldset', { class: 'radios' },
      h('legend', { text: 'Passphrase' }),
      h('div', { class: 'radio' }, gen, h('label', { for: gen.id, text: 'Generate one (shown once, after creation)' })),
      h('div', { class: 'radio' }, set, h('label', { for: set.id, text: 'Set it myself' })),
      fPass.wrap),
    h('div', { class: 'button-row' }, submit));
  const toggle = () => {
    pass.disabled = !set.checked;
    if (!set.checked) {
      pass.value = '';
      setFieldError(pass, '');
    }
  };
  gen.addEventListener('change', toggle);
  set.addEventListener('change', () => {
    toggle();
    pass.focus();
  });

  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'button', text: 'Show more', hidden: true });
  let cursor = '';

  async function download(pkg, btn) {
    err.show(null);
    if (btn) btn.disabled = true;
    try {
      const { blob, filename } = await api.call('GET', `/api/v1/packages/${api.enc(pkg.package_id)}/file`, { blob: true, filename: `${pkg.package_id}.mcpp` });
      saveBlob(blob, filename);
    } catch (e) {
      err.show(e);
    } finally {
      if (btn) btn.disabled = false;
    }
  }

  function pkgRow(p) {
    const expired = isPast(p.expires);
    const b = p.downloadable === false ? h('span', { class: 'muted', text: 'no file kept' })
      : h('button', { type: 'button', class: 'button small', text: 'Download', 'aria-label': `Download package ${p.package_id}` });
    if (b.tagName === 'BUTTON') b.addEventListener('click', () => download(p, b));
    return h('tr', null,
      h('td', null, h('span', { class: 'mono small', text: p.package_id })),
      h('td', { class: 'nowrap' }, timeEl(p.created)),
      h('td', { class: 'nowrap' }, timeEl(p.expires), expired ? h('span', { class: 'tag tag-warn', text: 'expired' }) : null),
      h('td', null, b));
  }

  async function load(append) {
    try {
      const ans = await api.get('/api/v1/packages', { system: sys.name, limit: 50, cursor: append ? cursor : '' });
      const rows = (ans.items || []).map(pkgRow);
      if (append) tbody.append(...rows);
      else tbody.replaceChildren(...(rows.length ? rows : [h('tr', null, h('td', { colspan: '4', class: 'empty', text: 'No packages yet.' }))]));
      cursor = ans.next_cursor || '';
      more.hidden = !cursor;
    } catch (e) {
      err.show(e);
    }
  }
  more.addEventListener('click', () => load(true));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    setFieldError(days, '');
    setFieldError(pass, '');
    result.hidden = true;
    const n = Number(days.value);
    if (!Number.isInteger(n) || n < 1 || n > 36500) {
      setFieldError(days, 'A whole number of days from 1 to 36500.');
      days.focus();
      return;
    }
    const body = { valid_days: n };
    if (set.checked) {
      if (!pass.value) {
        setFieldError(pass, 'Enter the passphrase, or let one be generated.');
        pass.focus();
        return;
      }
      body.passphrase = pass.value;
    }
    submit.disabled = true;
    try {
      const ans = await api.post(`/api/v1/systems/${api.enc(sys.name)}/packages`, body);
      pass.value = '';
      const pkg = { package_id: ans.package_id, expires: ans.expires };
      const dlb = h('button', { type: 'button', class: 'button primary', text: 'Download package (.mcpp)' });
      dlb.addEventListener('click', () => download(pkg, dlb));
      const parts = [
        h('p', null, h('strong', { text: 'Package created. ' }), `Id ${ans.package_id}, expires `, timeEl(ans.expires), '.'),
      ];
      if (ans.passphrase) {
        const code = h('code', { class: 'secret', text: ans.passphrase });
        const copy = h('button', { type: 'button', class: 'button small', text: 'Copy passphrase' });
        copy.addEventListener('click', async () => {
          try {
            await navigator.clipboard.writeText(ans.passphrase);
            copy.textContent = 'Copied';
          } catch {
            copy.textContent = 'Copy failed: select the text';
          }
        });
        parts.push(h('div', { class: 'passphrase', role: 'group', 'aria-label': 'Generated passphrase' },
          h('p', { class: 'warn-text', text: 'Passphrase — shown only now. Keep it with the factory station; it is not stored in readable form.' }),
          h('p', null, code, ' ', copy)));
      } else {
        parts.push(h('p', { class: 'muted', text: 'The package is protected with the passphrase you set.' }));
      }
      parts.push(h('div', { class: 'button-row' }, dlb));
      result.replaceChildren(...parts);
      result.hidden = false;
      dlb.focus();
      load(false);
    } catch (e) {
      const target = { valid_days: days, passphrase: pass }[e.field];
      if (target) setFieldError(target, `${e.message} (${e.code})`);
      else err.show(e);
    } finally {
      submit.disabled = false;
    }
  });

  load(false);
  return h('section', { class: 'card card-wide', 'aria-labelledby': 'pkg-h' },
    h('h2', { id: 'pkg-h', text: 'Provisioning packages' }),
    h('p', { class: 'muted', text: 'A package bootstraps the devices of this system at the factory: it holds the key templates, the Root of Trust and a bootstrap credential protected by a passphrase.' }),
    err,
    h('div', { class: 'two-col' },
      h('div', null, h('h3', { text: 'Create a package' }), form),
      h('div', null, result)),
    h('div', null,
      h('div', null, h('h3', { text: 'Packages' }),
        h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Packages', tabindex: '0' },
          h('table', { class: 'table' },
            h('thead', null, h('tr', null, ['Package', 'Created', 'Expires', 'File'].map((t) => h('th', { scope: 'col', text: t })))),
            tbody)),
        more)));
}

function mockCard(sys) {
  const comp = h('select', null, (sys.components || []).map((c) => option(c.name, c.name)));
  const serial = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'MOCK-0001' });
  const fComp = field('Component', comp);
  const fSerial = field('Serial', serial, { errorFor: 'serial' });
  const err = errorBox();
  const submit = h('button', { type: 'submit', class: 'button', text: 'Create mock device files' });
  const form = h('form', { class: 'inline-form', novalidate: true, 'aria-label': 'Create mock device files' }, fComp.wrap, fSerial.wrap, h('div', { class: 'field field-end' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    setFieldError(serial, '');
    const s = serial.value.trim();
    if (!SERIAL_RE.test(s) || s.length > 64) {
      setFieldError(serial, 'A serial: letters, digits, . _ : - ; at most 64 characters.');
      serial.focus();
      return;
    }
    submit.disabled = true;
    try {
      const { blob, filename } = await api.call('POST', `/api/v1/systems/${api.enc(sys.name)}/components/${api.enc(comp.value)}/mock`, {
        json: { serial: s },
        blob: true,
        filename: `mock-${s}.tar`,
      });
      saveBlob(blob, filename);
    } catch (e) {
      if (e.field === 'serial') setFieldError(serial, `${e.message} (${e.code})`);
      else err.show(e);
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', { class: 'card card-wide', 'aria-labelledby': 'mock-h' },
    h('h2', { id: 'mock-h', text: 'Mock device files' }),
    h('p', { class: 'muted', text: 'Test identities for a component (identity.mcpi and profile.mccp in a tar), chained to the mock root: no production service accepts them.' }),
    err, form);
}
