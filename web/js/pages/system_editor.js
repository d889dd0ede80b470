// The system editor: a form that writes system.json (docs/formats.md,
// section 7) for POST /api/v1/systems (create) or PUT /api/v1/systems/{name}
// (edit). Field errors from the server land next to the field they name
// ("components[1].templates[0].usage").
import * as api from '../api.js';
import { h, clear, nextId, field, setFieldError, option, errorBox, toast, saveBlob } from '../dom.js';
import { can } from '../roles.js';

const ALGORITHMS = [
  ['ecdsa-p256', 'ECDSA P-256 (default)'],
  ['ecdsa-p384', 'ECDSA P-384'],
  ['ed25519', 'Ed25519'],
  ['rsa-3072', 'RSA 3072'],
];
const USAGES = [
  ['tls-client', 'TLS client'],
  ['tls-server', 'TLS server'],
  ['signing', 'Signing'],
];
const NAME_RE = /^[a-z0-9][a-z0-9_.-]*$/;
const DEFAULT_SUBJECT = 'CN={serial},OU={component},O={system}';

function newTemplate(i) {
  return { name: i === 0 ? 'tls' : '', algorithm: 'ecdsa-p256', usage: i === 0 ? ['tls-client'] : [], valid_days: '365', subject: '' };
}

function newComponent() {
  return { name: '', templates: [newTemplate(0)] };
}

function fromSystem(s, locked = false) {
  return {
    name: s.name || '',
    display_name: s.display_name && s.display_name !== s.name ? s.display_name : '',
    cloud_url: (s.services && s.services.cloud_url) || '',
    gateways: ((s.services && s.services.gateways) || []).join('\n'),
    renewal_window_days: s.renewal_window_days !== undefined ? String(s.renewal_window_days) : '30',
    components: (s.components || []).map((c) => ({
      name: c.name || '',
      locked,
      templates: (c.templates || []).map((t) => ({
        locked,
        name: t.name || '',
        algorithm: t.algorithm || 'ecdsa-p256',
        usage: [...(t.usage || [])],
        valid_days: t.valid_days !== undefined ? String(t.valid_days) : '',
        subject: t.subject && t.subject !== DEFAULT_SUBJECT ? t.subject : '',
      })),
    })),
  };
}

/** A whole number from a text field, or the text itself when it is not one. */
function num(v) {
  const t = String(v).trim();
  return /^\d+$/.test(t) ? Number(t) : t;
}

/** The system.json the form describes. */
export function toSystemJson(m) {
  const out = { name: m.name.trim() };
  if (m.display_name.trim()) out.display_name = m.display_name.trim();
  const gws = m.gateways.split(/\r?\n/).map((g) => g.trim()).filter(Boolean);
  if (m.cloud_url.trim() || gws.length) out.services = { cloud_url: m.cloud_url.trim(), gateways: gws };
  if (String(m.renewal_window_days).trim()) out.renewal_window_days = num(m.renewal_window_days);
  out.components = m.components.map((c) => ({
    name: c.name.trim(),
    templates: c.templates.map((t) => {
      const o = { name: t.name.trim(), algorithm: t.algorithm, usage: USAGES.map(([u]) => u).filter((u) => t.usage.includes(u)) };
      if (String(t.valid_days).trim()) o.valid_days = num(t.valid_days);
      if (t.subject.trim()) o.subject = t.subject.trim();
      return o;
    }),
  }));
  return out;
}

export function mount(main, ctx, { params, edit }) {
  const name = edit ? params[0] : '';
  let stopped = false;
  if (!can(ctx.user, 'admin')) {
    main.append(h('h1', { text: edit ? 'Edit system' : 'Create system' }),
      h('p', { class: 'alert alert-info', text: 'Only a security admin creates and edits systems.' }));
    return null;
  }
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: edit ? `#/systems/${name}` : '#/systems', text: edit ? `← ${name}` : '← All systems' })),
    h('div', { class: 'page-head' }, h('div', null,
      h('h1', { text: edit ? `Edit system ${name}` : 'Create system' }),
      h('p', { class: 'lead', text: 'Components are the device types of the system; each gets one key per template, and a certificate for each key when a request is approved.' }))));
  const host = h('div');
  main.append(host);
  if (!edit) {
    build(host, { name: '', display_name: '', cloud_url: '', gateways: '', renewal_window_days: '30', components: [newComponent()] }, false);
  } else {
    host.append(h('p', { class: 'muted', text: 'Loading…' }));
    api.get(`/api/v1/systems/${api.enc(name)}`).then((s) => {
      if (!stopped) build(clear(host), fromSystem(s, true), true);
    }, (e) => {
      if (stopped) return;
      const b = errorBox();
      clear(host).append(b);
      b.show(e);
    });
  }

  function build(root, model, editing) {
    const summary = errorBox();
    const preview = h('code');
    const compsHost = h('div', { class: 'components' });
    const fieldEls = () => [...root.querySelectorAll('[data-field]')];

    const refreshPreview = () => {
      preview.textContent = JSON.stringify(toSystemJson(model), null, 2);
    };

    function bind(control, obj, key) {
      control.value = obj[key];
      control.addEventListener('input', () => {
        obj[key] = control.value;
        setFieldError(control, '');
        refreshPreview();
      });
      control.addEventListener('change', () => {
        obj[key] = control.value;
        refreshPreview();
      });
      return control;
    }

    function errSlot(el) {
      const p = h('p', { class: 'field-error', hidden: true, role: 'alert' });
      el._slot = p;
      return p;
    }

    // ---- system fields ----
    const fName = field('System name', bind(h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', readOnly: editing, required: true }), model, 'name'), {
      hint: editing ? 'The name cannot change.' : 'Lowercase letters, digits, . _ - ; at most 64. It cannot change later.', errorFor: 'name',
    });
    const fDisplay = field('Display name', bind(h('input', { type: 'text', autocomplete: 'off' }), model, 'display_name'), { hint: 'Optional, e.g. "Infusion pump X2".', errorFor: 'display_name' });
    const fCloud = field('Cloud URL', bind(h('input', { type: 'url', autocomplete: 'off', spellcheck: 'false', placeholder: 'https://custos.example' }), model, 'cloud_url'), { hint: 'Optional: where devices reach the service.', errorFor: 'services.cloud_url' });
    const fGw = field('Gateway URLs', bind(h('textarea', { rows: '2', spellcheck: 'false' }), model, 'gateways'), { hint: 'Optional, one URL per line (at most 8). The certificates of tls-server templates name these hosts.', errorFor: 'services.gateways' });
    const fRenew = field('Renewal window (days)', bind(h('input', { type: 'number', min: '1', max: '36500', inputmode: 'numeric' }), model, 'renewal_window_days'), { hint: 'Devices renew their certificates this long before they expire.', errorFor: 'renewal_window_days' });

    function templateBlock(c, ci, t, ti) {
      const legend = `Component ${ci + 1}, key template ${ti + 1}`;
      const path = `components[${ci}].templates[${ti}]`;
      const nameIn = bind(h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', readOnly: t.locked, dataset: { focus: `${path}.name` } }), t, 'name');
      const alg = h('select', { disabled: t.locked }, ALGORITHMS.map(([v, l]) => option(v, l)));
      bind(alg, t, 'algorithm');
      const days = bind(h('input', { type: 'number', min: '1', max: '36500', inputmode: 'numeric' }), t, 'valid_days');
      const subject = bind(h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', placeholder: DEFAULT_SUBJECT }), t, 'subject');
      const usage = h('fieldset', { class: 'checks', dataset: { field: `${path}.usage` } }, h('legend', { text: 'Usage' }));
      const usageErr = errSlot(usage);
      for (const [u, label] of USAGES) {
        const cb = h('input', { type: 'checkbox', value: u, checked: t.usage.includes(u), disabled: t.locked });
        cb.id = nextId('u');
        cb.addEventListener('change', () => {
          t.usage = USAGES.map(([x]) => x).filter((x) => (x === u ? cb.checked : t.usage.includes(x)));
          usageErr.hidden = true;
          refreshPreview();
        });
        usage.append(h('span', { class: 'check' }, cb, h('label', { for: cb.id }, label, ' ', h('span', { class: 'mono muted small', text: u }))));
      }
      usage.append(usageErr);
      const remove = t.locked ? null : h('button', { type: 'button', class: 'button small subtle', text: 'Remove template', 'aria-label': `Remove ${legend}`, disabled: c.templates.length <= 1 });
      if (remove) remove.addEventListener('click', () => {
        c.templates.splice(ti, 1);
        renderComponents(`components[${ci}].add`);
      });
      const fs = h('fieldset', { class: 'template', dataset: { field: path } },
        h('legend', { text: legend }),
        h('div', { class: 'grid-4' },
          field('Template name', nameIn, { errorFor: `${path}.name`, hint: 'e.g. tls, sign' }).wrap,
          field('Algorithm', alg, { errorFor: `${path}.algorithm` }).wrap,
          field('Valid for (days)', days, { errorFor: `${path}.valid_days` }).wrap,
          field('Subject pattern', subject, { errorFor: `${path}.subject`, hint: 'Optional. Placeholders {serial} {component} {system} {template}.', cls: 'span-2' }).wrap),
        usage,
        t.locked ? h('p', { class: 'hint', text: 'Devices hold keys made from this template: its name, algorithm and usage stay; validity and subject apply to certificates issued from now on.' }) : null,
        remove ? h('div', { class: 'button-row end' }, remove) : null);
      fs.prepend(errSlot(fs));
      return fs;
    }

    function componentBlock(c, ci) {
      const path = `components[${ci}]`;
      const nameIn = bind(h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', readOnly: c.locked, dataset: { focus: `${path}.name` } }), c, 'name');
      const addT = c.locked ? null : h('button', { type: 'button', class: 'button small', text: 'Add key template', dataset: { focus: `${path}.add` }, disabled: c.templates.length >= 8 });
      if (addT) addT.addEventListener('click', () => {
        c.templates.push(newTemplate(c.templates.length));
        renderComponents(`${path}.templates[${c.templates.length - 1}].name`);
      });
      const removeC = c.locked ? null : h('button', { type: 'button', class: 'button small danger-outline', text: 'Remove component', 'aria-label': `Remove component ${ci + 1}`, disabled: model.components.length <= 1 });
      if (removeC) removeC.addEventListener('click', () => {
        model.components.splice(ci, 1);
        renderComponents('add-component');
      });
      const templates = h('div', { class: 'templates', dataset: { field: `${path}.templates` } });
      templates.append(errSlot(templates), ...c.templates.map((t, ti) => templateBlock(c, ci, t, ti)));
      const fs = h('fieldset', { class: 'component-edit', dataset: { field: path } },
        h('legend', { text: `Component ${ci + 1}` }),
        field('Component name', nameIn, { errorFor: `${path}.name`, hint: c.locked ? 'In use: a component keeps its name and key templates.' : 'e.g. pump, hub. Lowercase letters, digits, . _ -' }).wrap,
        templates,
        addT || removeC ? h('div', { class: 'button-row' }, addT, removeC) : null);
      fs.prepend(errSlot(fs));
      return fs;
    }

    const addC = h('button', { type: 'button', class: 'button', text: 'Add component', dataset: { focus: 'add-component' } });
    addC.addEventListener('click', () => {
      model.components.push(newComponent());
      renderComponents(`components[${model.components.length - 1}].name`);
    });
    const compsWrap = h('div', { dataset: { field: 'components' } });

    function renderComponents(focus) {
      compsHost.replaceChildren(...model.components.map(componentBlock));
      addC.disabled = model.components.length >= 32;
      refreshPreview();
      if (focus) {
        const el = root.querySelector(`[data-focus="${CSS.escape(focus)}"]`);
        if (el && !el.disabled) el.focus();
        else addC.focus();
      }
    }

    // ---- load / download system.json ----
    const loadIn = h('input', { type: 'file', accept: '.json,application/json' });
    const fLoad = field('Load from a system.json file', loadIn, { hint: 'Fills the form; nothing is saved until you save.' });
    loadIn.addEventListener('change', async () => {
      setFieldError(loadIn, '');
      const f = loadIn.files && loadIn.files[0];
      if (!f) return;
      try {
        if (f.size > 64 * 1024) throw new Error('system.json is at most 64 KiB.');
        const m = fromSystem(JSON.parse(await f.text()));
        if (editing) m.name = model.name;
        if (!m.components.length) m.components.push(newComponent());
        for (const c of m.components) if (!c.templates.length) c.templates.push(newTemplate(0));
        Object.assign(model, m);
        build(clear(root), model, editing);
        toast(`Loaded ${f.name}.`);
      } catch (e) {
        setFieldError(loadIn, `Not a system definition: ${e.message}`);
      }
    });
    const dlJson = h('button', { type: 'button', class: 'button subtle', text: 'Download system.json' });
    dlJson.addEventListener('click', () => {
      const s = toSystemJson(model);
      saveBlob(new Blob([JSON.stringify(s, null, 2) + '\n'], { type: 'application/json' }), `${s.name || 'system'}.json`);
    });

    // ---- save ----
    const save = h('button', { type: 'submit', class: 'button primary', text: editing ? 'Save changes' : 'Create system' });
    const cancel = h('a', { class: 'button', href: editing ? `#/systems/${model.name}` : '#/systems', text: 'Cancel' });
    const form = h('form', { class: 'editor', novalidate: true, 'aria-label': editing ? 'Edit system' : 'Create system' },
      summary,
      h('section', { class: 'card card-wide' },
        h('h2', { text: 'System' }),
        h('div', { class: 'grid-2' }, fName.wrap, fDisplay.wrap, fCloud.wrap, fRenew.wrap, h('div', { class: 'span-2' }, fGw.wrap))),
      h('section', { class: 'card card-wide' },
        h('h2', { text: 'Components and key templates' }),
        h('p', { class: 'muted', text: editing ? 'You can add components, and change the validity and subject pattern of existing templates. Existing components keep their key templates: devices in the field hold keys made from them.' : 'Every component needs at least one template that is not Ed25519: a device signs its reprovisioning requests with it.' }),
        compsWrap),
      h('section', { class: 'card card-wide' },
        h('details', { class: 'preview' }, h('summary', { text: 'system.json preview' }), h('pre', null, preview)),
        h('div', { class: 'grid-2' }, editing ? h('div') : fLoad.wrap, h('div', { class: 'field field-end' }, dlJson))),
      h('div', { class: 'form-actions' }, save, cancel));
    compsWrap.append(errSlot(compsWrap), compsHost, h('div', { class: 'button-row' }, addC));

    function clearErrors() {
      summary.show(null);
      for (const el of fieldEls()) {
        if (el._fieldError) setFieldError(el, '');
        if (el._slot) {
          el._slot.hidden = true;
          el._slot.textContent = '';
        }
      }
    }

    /** Show an error at the element its field names (the longest match). */
    function place(e) {
      const f = e.field || '';
      let best = null;
      for (const el of fieldEls()) {
        const p = el.dataset.field;
        if (f === p || (f.startsWith(p) && (f[p.length] === '.' || f[p.length] === '['))) {
          if (!best || p.length > best.dataset.field.length) best = el;
        }
      }
      const text = `${e.message}${e.code ? ` (${e.code})` : ''}`;
      if (best && best._fieldError) {
        setFieldError(best, text);
        best.focus();
      } else if (best && best._slot) {
        best._slot.textContent = text;
        best._slot.hidden = false;
        const first = best.querySelector('input, select, textarea');
        if (first) first.focus();
      }
      return Boolean(best);
    }

    /** Checks the browser can make before sending; returns the first problem. */
    function check() {
      const probs = [];
      if (!NAME_RE.test(model.name.trim())) probs.push({ field: 'name', message: 'The system name must start with a lowercase letter or digit and use only a-z 0-9 . _ -' });
      model.components.forEach((c, ci) => {
        if (!NAME_RE.test(c.name.trim())) probs.push({ field: `components[${ci}].name`, message: 'A component name: lowercase letters, digits, . _ - (e.g. pump).' });
        c.templates.forEach((t, ti) => {
          const p = `components[${ci}].templates[${ti}]`;
          if (!NAME_RE.test(t.name.trim())) probs.push({ field: `${p}.name`, message: 'A template name: lowercase letters, digits, . _ - (e.g. tls).' });
          if (!t.usage.length) probs.push({ field: `${p}.usage`, message: 'Choose at least one usage.' });
          if (String(t.valid_days).trim() && !/^\d+$/.test(String(t.valid_days).trim())) probs.push({ field: `${p}.valid_days`, message: 'A whole number of days.' });
        });
        if (c.templates.length && c.templates.every((t) => t.algorithm === 'ed25519')) {
          probs.push({ field: `components[${ci}].templates`, message: 'At least one template of this component must not be Ed25519.' });
        }
      });
      return probs;
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors();
      const probs = check();
      if (probs.length) {
        summary.show(`Check the form: ${probs.length} problem${probs.length > 1 ? 's' : ''}.`);
        for (const p of probs.reverse()) place(p); // the first one ends with the focus
        return;
      }
      const body = toSystemJson(model);
      save.disabled = true;
      try {
        const ans = editing
          ? await api.put(`/api/v1/systems/${api.enc(model.name)}`, body)
          : await api.call('POST', '/api/v1/systems', { json: body });
        toast(editing ? `Saved ${ans.name || model.name}.` : `Created system ${ans.name || model.name}.`);
        ctx.navigate(`#/systems/${ans.name || model.name}`);
      } catch (e) {
        let msg = e;
        if (editing && (e.status === 404 || e.status === 405) && e.code !== 'not_found') {
          msg = { message: 'This server cannot edit systems (PUT /api/v1/systems/{name} is missing).', code: e.code };
        }
        summary.show(msg);
        if (!place(e)) summary.focus();
      } finally {
        save.disabled = false;
      }
    });
    summary.tabIndex = -1;

    root.append(form);
    renderComponents(null);
  }

  return () => {
    stopped = true;
  };
}
