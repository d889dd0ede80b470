// What each role sees follows docs/api.md's roles table, and the server
// refuses what the console hides when it is forced (a fetch from the page
// with the role's own cookie and CSRF value): approver, auditor, technician.
// Then sign-out ends the session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import * as L from './lib.mjs';

let server;
let browser;
let admin;
const pages = [];
const SYS = 'infusion-x2';
const users = {
  arno: { role: 'approver', password: `appr-${randomBytes(9).toString('base64url')}` },
  audrey: { role: 'auditor', password: `audi-${randomBytes(9).toString('base64url')}` },
  tina: { role: 'technician', password: `tech-${randomBytes(9).toString('base64url')}` },
};

before(async () => {
  server = await L.startServer();
  admin = await L.bearer(server, 'admin', server.adminPassword);
  const sys = await L.readFile(path.join(L.SRC, 'tests', 'vectors', 'system-infusion.json'));
  const r = await L.api(server, 'POST', '/api/v1/systems', { token: admin, body: sys, type: 'application/json' });
  assert.equal(r.status, 201, `POST /api/v1/systems: ${r.body}`);
  for (const [username, u] of Object.entries(users)) {
    const c = await L.api(server, 'POST', '/api/v1/users', { token: admin, json: { username, role: u.role, password: u.password } });
    assert.equal(c.status, 201, `POST /api/v1/users ${username}: ${c.body}`);
  }
  browser = await L.launch(server);
});

after(async () => {
  const problems = pages.flatMap((p) => p.problems);
  if (browser) await browser.close();
  if (server) await server.stop();
  assert.deepEqual(problems, [], 'the console logged errors (CSP violations, exceptions)');
});

async function signedIn(username) {
  const page = await L.newPage(browser);
  pages.push(page);
  await L.signIn(page, server, username, users[username].password);
  return page;
}

/** A call from the page with its own cookie (and its CSRF value unless csrf: false). */
function forced(page, method, p, body, { csrf = true } = {}) {
  return page.evaluate(async ({ method, p, body, csrf }) => {
    const headers = { 'Content-Type': 'application/json' };
    if (csrf) headers['X-Custos-CSRF'] = sessionStorage.getItem('custos.csrf') || '';
    const r = await fetch(p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
    let j = null;
    try {
      j = await r.json();
    } catch {
      j = null;
    }
    return { status: r.status, code: j && j.error ? j.error.code : null };
  }, { method, p, body, csrf });
}

const nav = (page) => page.getByRole('navigation', { name: 'Main' });

test('an approver approves but sees no admin action; forced admin calls are 403', async () => {
  const page = await signedIn('arno');
  await page.getByText('Approver', { exact: true }).waitFor();
  assert.equal(await nav(page).getByRole('link', { name: 'Provisioning' }).count(), 0, 'no Provisioning page');
  await page.getByRole('button', { name: 'Approve selected' }).waitFor();

  await nav(page).getByRole('link', { name: 'Systems' }).click();
  await page.getByRole('link', { name: SYS }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Create system' }).count(), 0, 'no Create system');
  assert.equal(await page.getByRole('heading', { name: 'Operators' }).count(), 0, 'no Operators');
  await page.getByRole('link', { name: SYS }).click();
  await page.getByRole('heading', { name: 'Components and key templates' }).waitFor();
  await page.getByText('Only a security admin changes the policy.').waitFor();
  for (const name of ['Create package', 'Save mode', 'Upload allow-list', 'Create mock device files']) {
    assert.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} button`);
  }
  assert.equal(await page.getByRole('heading', { name: 'Provisioning packages' }).count(), 0, 'no packages');
  assert.equal(await page.getByRole('link', { name: 'Edit system' }).count(), 0, 'no Edit system');
  assert.deepEqual(await L.junkText(page), []);
  assert.deepEqual(await L.unlabelled(page), []);
  await L.shot(page, 'approver-system');
  await page.goto(`${server.url}/#/systems/new`);
  await page.getByText('Only a security admin creates and edits systems.').waitFor();

  // The server refuses what the console does not offer.
  let r = await forced(page, 'POST', `/api/v1/systems/${SYS}/packages`, { valid_days: 7 });
  assert.deepEqual(r, { status: 403, code: 'forbidden' }, 'package creation');
  r = await forced(page, 'POST', '/api/v1/systems', { name: 'other', components: [{ name: 'x', templates: [{ name: 't', usage: ['signing'] }] }] });
  assert.deepEqual(r, { status: 403, code: 'forbidden' }, 'system creation');
  r = await forced(page, 'PUT', `/api/v1/systems/${SYS}/policy`, { mode: 'package' });
  assert.deepEqual(r, { status: 403, code: 'forbidden' }, 'policy');
  r = await forced(page, 'POST', '/api/v1/users', { username: 'mallory', role: 'admin' });
  assert.deepEqual(r, { status: 403, code: 'forbidden' }, 'users');
  // Without the CSRF header the cookie alone does nothing.
  r = await forced(page, 'POST', '/api/v1/requests/aaaaaaaaaaaaaaaaaaaaaaaaaa/reject', { reason: 'x' }, { csrf: false });
  assert.deepEqual(r, { status: 403, code: 'csrf' }, 'a state change without X-Custos-CSRF');
  const pol = await L.api(server, 'GET', `/api/v1/systems/${SYS}/policy`, { token: admin });
  assert.equal(pol.json.mode, 'manual', 'the policy is unchanged');
});

test('an auditor reads only: no approve controls; a forced approve is 403', async () => {
  const page = await signedIn('audrey');
  await page.getByText('Auditor', { exact: true }).waitFor();
  await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Approve selected' }).count(), 0);
  assert.equal(await page.getByLabel('Select all requests on this page').count(), 0);
  assert.equal(await nav(page).getByRole('link', { name: 'Provisioning' }).count(), 0);
  const r = await forced(page, 'POST', '/api/v1/requests/aaaaaaaaaaaaaaaaaaaaaaaaaa/approve');
  assert.deepEqual(r, { status: 403, code: 'forbidden' });
  await nav(page).getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('button', { name: 'Verify chain' }).click();
  await page.getByText('Chain verified.').waitFor();
});

test('a technician uploads and makes mock device files, but cannot approve or make packages', async () => {
  const page = await signedIn('tina');
  await nav(page).getByRole('link', { name: 'Provisioning' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Approve selected' }).count(), 0);
  await nav(page).getByRole('link', { name: 'Systems' }).click();
  await page.getByRole('link', { name: SYS }).click();
  await page.getByRole('heading', { name: 'Mock device files' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Create package' }).count(), 0);
  await page.getByLabel('Component', { exact: true }).selectOption('pump');
  await page.getByLabel('Serial', { exact: true }).fill('MOCK-0001');
  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: L.T(15000) }),
    page.getByRole('button', { name: 'Create mock device files' }).click(),
  ]);
  assert.equal(dl.suggestedFilename(), 'mock-MOCK-0001.tar');
  const file = path.join(server.tmp, 'mock.tar');
  await dl.saveAs(file);
  assert.ok((await stat(file)).size > 1024, 'the mock tar is not empty');
  const r = await forced(page, 'POST', '/api/v1/requests/aaaaaaaaaaaaaaaaaaaaaaaaaa/approve');
  assert.deepEqual(r, { status: 403, code: 'forbidden' });
});

test('sign out ends the session', async () => {
  const page = pages[0];
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  const r = await page.evaluate(async () => (await fetch('/api/v1/session', { credentials: 'same-origin' })).status);
  assert.equal(r, 401);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('custos.csrf')), null);
});

test('an admin sees the systems list, the operators, and the gateways when the server has them', async () => {
  const g = await L.api(server, 'GET', '/api/v1/gateways', { token: admin });
  const page = await L.newPage(browser);
  pages.push(page);
  await L.signIn(page, server, 'admin', server.adminPassword);
  await nav(page).getByRole('link', { name: 'Systems' }).click();
  await page.getByRole('link', { name: 'Create system' }).waitFor();
  await page.getByRole('region', { name: 'Operators' }).getByRole('cell', { name: 'arno' }).waitFor();
  if (g.status === 200) {
    await page.getByRole('heading', { name: 'Gateways' }).waitFor();
  } else {
    assert.equal(g.status, 404);
    assert.equal(await page.getByRole('heading', { name: 'Gateways' }).isVisible(), false);
  }
  assert.deepEqual(await L.junkText(page), []);
  assert.deepEqual(await L.unlabelled(page), []);
  await L.shot(page, 'systems');
});
