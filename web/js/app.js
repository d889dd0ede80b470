// The Custos console: sign-in, the page shell and hash routing
// (#/devices, #/devices/ID, #/provisioning, #/systems, #/systems/NAME,
// #/systems/new, #/systems/NAME/edit, #/audit).
import * as api from './api.js';
import { h, clear, field, errorBox } from './dom.js';
import { can, ROLE_LABEL } from './roles.js';
import * as devices from './pages/devices.js';
import * as detail from './pages/detail.js';
import * as provisioning from './pages/provisioning.js';
import * as systems from './pages/systems.js';
import * as editor from './pages/system_editor.js';
import * as audit from './pages/audit.js';

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');

const ctx = {
  user: null,
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

let unmount = null;
let routed = false; // the first page after sign-in keeps the focus where it is

const NAV = [
  { hash: '#/devices', label: 'Devices', show: () => true },
  { hash: '#/provisioning', label: 'Provisioning', show: (u) => can(u, 'upload') },
  { hash: '#/systems', label: 'Systems', show: () => true },
  { hash: '#/audit', label: 'Audit', show: () => true },
];

const ROUTES = [
  { re: /^#\/devices\/([a-z2-7]{26})$/, page: detail, nav: '#/devices', title: 'Device' },
  { re: /^#\/devices$/, page: devices, nav: '#/devices', title: 'Devices' },
  { re: /^#\/provisioning$/, page: provisioning, nav: '#/provisioning', title: 'Provisioning' },
  { re: /^#\/systems\/new$/, page: editor, nav: '#/systems', title: 'New system' },
  { re: /^#\/systems\/([a-z0-9][a-z0-9_.-]*)\/edit$/, page: editor, nav: '#/systems', title: 'Edit system', edit: true },
  { re: /^#\/systems\/([a-z0-9][a-z0-9_.-]*)$/, page: systems, nav: '#/systems', title: 'System' },
  { re: /^#\/systems$/, page: systems, nav: '#/systems', title: 'Systems' },
  { re: /^#\/audit$/, page: audit, nav: '#/audit', title: 'Audit trail' },
];

function stopPage() {
  if (unmount) {
    try {
      unmount();
    } catch {
      /* a page that fails to clean up must not block the next */
    }
  }
  unmount = null;
}

// ---- sign-in ---------------------------------------------------------------------

function showSignIn(message) {
  stopPage();
  ctx.user = null;
  topbar.hidden = true;
  clear(topbar);
  document.title = 'Sign in · Custos console';
  for (const d of document.querySelectorAll('dialog')) d.close();
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const err = errorBox();
  const submit = h('button', { type: 'submit', class: 'button primary wide', text: 'Sign in' });
  const form = h('form', { class: 'signin-form', novalidate: true },
    field('Username', user).wrap,
    field('Password', pass).wrap,
    err,
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    if (!user.value || !pass.value) {
      err.show('Enter your username and password.');
      (user.value ? pass : user).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const s = await api.signIn(user.value.trim(), pass.value);
      pass.value = '';
      start(s);
    } catch (e) {
      err.show(e.status === 401 ? 'Wrong username or password.' : e);
      submit.disabled = false;
      submit.textContent = 'Sign in';
      pass.select();
      pass.focus();
    }
  });
  clear(main).appendChild(h('div', { class: 'signin' },
    h('div', { class: 'signin-card' },
      h('div', { class: 'brand brand-large' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Custos'),
      h('h1', { text: 'Sign in to the console' }),
      message ? h('p', { class: 'alert alert-info', text: message }) : null,
      form),
    h('p', { class: 'signin-foot', text: 'Device identity and provisioning. Every action is recorded in the audit trail.' })));
  user.focus();
}

// ---- the shell -----------------------------------------------------------------------

function renderTopbar() {
  const u = ctx.user;
  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' },
    h('ul', null, NAV.filter((n) => n.show(u)).map((n) =>
      h('li', null, h('a', { href: n.hash, dataset: { nav: n.hash }, text: n.label })))));
  const out = h('button', { type: 'button', class: 'button subtle', text: 'Sign out' });
  out.addEventListener('click', async () => {
    out.disabled = true;
    try {
      await api.signOut();
    } catch {
      /* signed out locally either way */
    }
    history.replaceState(null, '', '#/devices');
    showSignIn('You are signed out.');
  });
  const skip = h('button', { type: 'button', class: 'skip-link', text: 'Skip to content' });
  skip.addEventListener('click', () => main.focus());
  clear(topbar).append(
    skip,
    h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Custos'),
    nav,
    h('div', { class: 'user' },
      h('span', { class: 'user-name', text: u.username }),
      h('span', { class: `role role-${u.role}`, text: ROLE_LABEL[u.role] || u.role }),
      out));
  topbar.hidden = false;
}

function start(session) {
  ctx.user = { username: session.username, role: session.role, expires: session.expires };
  renderTopbar();
  if (!location.hash || location.hash === '#' || location.hash === '#/') history.replaceState(null, '', '#/devices');
  route();
}

function route() {
  if (!ctx.user) return;
  const hash = location.hash || '#/devices';
  let match = null;
  let r = null;
  for (const cand of ROUTES) {
    match = cand.re.exec(hash);
    if (match) {
      r = cand;
      break;
    }
  }
  stopPage();
  for (const a of topbar.querySelectorAll('a[data-nav]')) {
    if (r && a.dataset.nav === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  if (!r) {
    document.title = 'Not found · Custos console';
    main.append(h('h1', { text: 'Page not found', tabindex: '-1' }),
      h('p', null, 'No page here. ', h('a', { href: '#/devices', text: 'Go to Devices' })));
    main.focus();
    return;
  }
  document.title = `${r.title} · Custos console`;
  const params = match.slice(1).map((p) => decodeURIComponent(p));
  unmount = r.page.mount(main, ctx, { params, edit: Boolean(r.edit), hash }) || null;
  const h1 = main.querySelector('h1');
  if (h1) {
    h1.tabIndex = -1;
    if (routed) h1.focus({ preventScroll: false });
  }
  routed = true;
}

window.addEventListener('hashchange', route);

api.onUnauthenticated(() => {
  if (ctx.user) showSignIn('Your session has ended. Sign in again.');
});

async function boot() {
  try {
    const s = await api.whoAmI();
    if (!api.csrf()) {
      // GET /api/v1/session repeats the CSRF value to a cookie session; a
      // session without one cannot change anything: sign in again.
      showSignIn('Sign in to continue in this tab.');
      return;
    }
    start(s);
  } catch (e) {
    showSignIn(e.status === 401 || e.status === 0 ? (e.status === 0 ? e.message : '') : e.message);
  }
}

boot();
