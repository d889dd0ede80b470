// The console end to end, clicking as a person would, against a real
// custosd: sign in; create a system with two components in the form (and
// edit it); a package with a generated passphrase; a connected device that
// appears on the Devices page, is approved there and turns provisioned
// without a reload; the disconnected path (upload, approve, download the
// profile, install it, complete provisioning); a tampered and an oversized
// upload; the audit trail and its chain.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { stat } from 'node:fs/promises';
import * as L from './lib.mjs';

let server;
let browser;
let page;
let work;
const SYS = 'infusion-x2';
const state = {};

before(async () => {
  server = await L.startServer({ pollInterval: 1 });
  work = path.join(server.tmp, 'work');
  await L.mkdir(work, { recursive: true });
  browser = await L.launch(server);
  page = await L.newPage(browser);
});

after(async () => {
  const problems = page ? page.problems : [];
  if (browser) await browser.close();
  if (server) await server.stop();
  assert.deepEqual(problems, [], 'the console logged errors (CSP violations, exceptions)');
});

// Each step needs the ones before it: after a failure the rest are skipped,
// and the page at the failure is kept as a screenshot.
let failed = false;
function step(name, fn) {
  test(name, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      await L.shot(page, `FAILED-${name.split('.')[0]}`).catch(() => {});
      throw e;
    }
  });
}

const devicesTable = () => page.getByRole('region', { name: 'Requests table' });
const rowOf = (serial) => devicesTable().getByRole('row').filter({ has: page.getByRole('link', { name: serial, exact: true }) });

/** A screenshot, after checking that every control on the page is labelled. */
async function shot(name, opts) {
  assert.deepEqual(await L.unlabelled(page), [], `unlabelled controls on ${name}`);
  assert.deepEqual(await L.junkText(page), [], `rendering leftovers on ${name}`);
  await L.shot(page, name, opts);
}

async function gotoNav(name) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
}

/** The download a click starts, saved under work/; returns its path. */
async function download(click, name) {
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: L.T(15000) }), click()]);
  const file = path.join(work, name || dl.suggestedFilename());
  await dl.saveAs(file);
  return file;
}

step('1. sign in (a wrong password is refused next to the form)', async () => {
  await page.goto(`${server.url}/`);
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  await shot('signin');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor();
  await page.getByLabel('Password').fill(server.adminPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
  await page.getByText('Security admin').waitFor();
  // The CSRF value survives a reload (sessionStorage).
  await page.reload();
  await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
  assert.ok(await page.evaluate(() => sessionStorage.getItem('custos.csrf')), 'the csrf value is kept in sessionStorage');
});

step('2. create a system with two components in the form, then edit it', async () => {
  await gotoNav('Systems');
  await page.getByRole('link', { name: 'Create system' }).click();
  await page.getByRole('heading', { name: 'Create system', level: 1 }).waitFor();
  await page.getByLabel('System name').fill(SYS);
  await page.getByLabel('Display name').fill('Infusion pump X2');
  await page.getByLabel('Cloud URL').fill('https://custos.example.com');
  await page.getByLabel('Gateway URLs').fill('https://gw1.example.com');

  const c1 = page.getByRole('group', { name: 'Component 1', exact: true });
  await c1.getByLabel('Component name').fill('pump');
  const t11 = page.getByRole('group', { name: 'Component 1, key template 1', exact: true });
  assert.equal(await t11.getByLabel('Template name').inputValue(), 'tls');
  assert.ok(await t11.getByLabel(/TLS client/).isChecked());
  await c1.getByRole('button', { name: 'Add key template' }).click();
  const t12 = page.getByRole('group', { name: 'Component 1, key template 2', exact: true });
  assert.ok(await t12.getByLabel('Template name').evaluate((el) => el === document.activeElement), 'the new template name has the focus');
  await t12.getByLabel('Template name').fill('sign');
  await t12.getByLabel('Algorithm').selectOption('ecdsa-p384');
  await t12.getByLabel(/Signing/).check();
  await t12.getByLabel('Valid for (days)').fill('730');

  await page.getByRole('button', { name: 'Add component' }).click();
  const c2 = page.getByRole('group', { name: 'Component 2', exact: true });
  await c2.getByLabel('Component name').fill('hub');
  const t21 = page.getByRole('group', { name: 'Component 2, key template 1', exact: true });
  await t21.getByLabel('Template name').fill('server');
  await t21.getByLabel(/TLS client/).uncheck();
  await t21.getByLabel(/TLS server/).check();
  await t21.getByLabel('Subject pattern').fill('CN={serial}.hub,OU={component},O=Acme Medical');

  // A subject pattern the server refuses: its error lands next to that field.
  await t11.getByLabel('Subject pattern').fill('CN={serial},XX=nope');
  await shot('system-editor');
  await page.getByRole('button', { name: 'Create system' }).click();
  const subj = t11.getByLabel('Subject pattern');
  await page.waitForFunction((el) => el.getAttribute('aria-invalid') === 'true', await subj.elementHandle(), { timeout: L.T(10000) });
  const described = await subj.evaluate((el) => el.getAttribute('aria-describedby').split(' ').map((id) => document.getElementById(id)?.textContent || '').join(' '));
  assert.match(described, /subject/i, 'the subject error is described next to the field');
  await t11.getByLabel('Subject pattern').fill('');

  await page.getByRole('button', { name: 'Create system' }).click();
  await page.getByRole('heading', { name: /Infusion pump X2/, level: 1 }).waitFor();
  assert.match(page.url(), /#\/systems\/infusion-x2$/);
  await page.getByRole('region', { name: 'Key templates of pump' }).getByRole('cell', { name: 'sign', exact: true }).waitFor();
  await page.getByRole('region', { name: 'Key templates of hub' }).getByRole('cell', { name: 'server', exact: true }).waitFor();

  // Edit (PUT): the display name and a validity change; existing templates keep algorithm and usage.
  await page.getByRole('link', { name: 'Edit system' }).click();
  await page.getByRole('heading', { name: `Edit system ${SYS}` }).waitFor();
  assert.ok(await page.getByRole('group', { name: 'Component 1, key template 1', exact: true }).getByLabel('Algorithm').isDisabled());
  await page.getByLabel('Display name').fill('Infusion pump X2 rev B');
  await page.getByRole('group', { name: 'Component 1, key template 1', exact: true }).getByLabel('Valid for (days)').fill('400');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { name: /Infusion pump X2 rev B/, level: 1 }).waitFor();
  await page.getByRole('region', { name: 'Key templates of pump' }).getByRole('cell', { name: '400 days' }).waitFor();
});

step('3. create and download a package; the passphrase is shown once; the policy', async () => {
  await page.getByLabel('Valid for (days)').fill('30');
  await page.getByLabel('Generate one (shown once, after creation)').check();
  await page.getByRole('button', { name: 'Create package' }).click();
  const pp = page.getByRole('group', { name: 'Generated passphrase' });
  await pp.waitFor();
  const passphrase = (await pp.locator('code').textContent()).trim();
  assert.ok(passphrase.length >= 16, `a generated passphrase (${passphrase.length} characters)`);
  await shot('system-package');
  const pkg = await download(() => page.getByRole('button', { name: 'Download package (.mcpp)' }).click(), 'pkg.mcpp');
  assert.ok((await stat(pkg)).size > 1000, 'the package download is not empty');
  state.pkg = pkg;
  state.pass = path.join(work, 'pass.txt');
  await L.writeFile(state.pass, `${passphrase}\n`);
  // Listed with its expiry.
  const pkgTable = page.getByRole('region', { name: 'Packages' });
  await pkgTable.getByRole('button', { name: /Download package / }).first().waitFor();

  // The policy: an allow-list file, then mode manual (what test 4 needs).
  await L.writeFile(path.join(work, 'allow.txt'), 'ALLOW-0001\nALLOW-0002\n# a comment\n\nALLOW-0003\n');
  await page.getByLabel('Allow-list file').setInputFiles(path.join(work, 'allow.txt'));
  await page.getByRole('button', { name: 'Upload allow-list' }).click();
  await page.getByRole('status').filter({ hasText: 'Allow-list replaced: 3 serial(s).' }).waitFor();
  await page.getByLabel('Approval mode', { exact: true }).selectOption('manual');
  await page.getByRole('button', { name: 'Save mode' }).click();
  await page.getByRole('status').filter({ hasText: 'Approval mode is now manual.' }).waitFor();
  state.admin = await L.bearer(server, 'admin', server.adminPassword);
  const pol = await L.api(server, 'GET', `/api/v1/systems/${SYS}/policy`, { token: state.admin });
  assert.equal(pol.json.mode, 'manual');
  assert.equal(pol.json.allow_count, 3);
  await shot('system', { fullPage: true });

  // Shown once: after leaving the page it is gone.
  await gotoNav('Devices');
  await gotoNav('Systems');
  await page.getByRole('link', { name: SYS }).click();
  await page.getByRole('heading', { name: 'Provisioning packages' }).waitFor();
  assert.equal(await page.getByRole('group', { name: 'Generated passphrase' }).count(), 0);
  assert.equal(await page.getByText(passphrase).count(), 0);
});

step('4. a connected device appears, is approved on the Devices page, turns provisioned without a reload', async () => {
  await gotoNav('Devices');
  await page.evaluate(() => { window.__noReload = 1; });
  const pkg = path.join(work, 'con1.mcpp');
  await L.copyFile(state.pkg, pkg);
  const dev = L.device(work, 'con1');
  const proc = dev.provision(pkg, state.pass, 'pump', 'CON-0001', server.url, 90 * L.SLOW);
  try {
    const row = rowOf('CON-0001');
    await row.waitFor({ timeout: L.T(30000) });
    await row.getByText('pending', { exact: true }).waitFor();
    await row.getByText('connected', { exact: true }).waitFor();
    await page.getByRole('button', { name: /^Pending 1$/ }).waitFor();
    await shot('devices');
    await page.getByLabel('Select CON-0001').check();
    await page.getByText('1 selected').waitFor();
    // A new request arrives while CON-0001 is selected: the table is
    // re-rendered by the poll and the selection stays.
    const sel = L.device(work, 'sel1');
    await sel.request(state.pkg, state.pass, 'pump', 'SEL-0001');
    const up = await L.api(server, 'POST', '/api/v1/requests', { token: state.admin, body: await L.readFile(sel.mcpr), type: 'application/vnd.custos.mcpr' });
    assert.equal(up.status, 201, `upload SEL-0001: ${up.body}`);
    await rowOf('SEL-0001').waitFor({ timeout: L.T(15000) });
    assert.ok(await page.getByLabel('Select CON-0001').isChecked(), 'the selection survived the refresh');
    await page.getByText('1 selected').waitFor();
    await page.getByRole('button', { name: 'Approve selected' }).click();
    const dlg = page.getByRole('dialog', { name: 'Approve request CON-0001' });
    await dlg.waitFor();
    await dlg.getByRole('button', { name: 'Approve', exact: true }).click();
    await dlg.waitFor({ state: 'hidden' });
    await row.getByText('provisioned', { exact: true }).waitFor({ timeout: L.T(45000) });
    assert.equal(await page.evaluate(() => window.__noReload), 1, 'the page was not reloaded');
    const { code, stderr } = await proc.done;
    assert.equal(code, 0, `custos-device provision exited ${code}: ${stderr}`);
    assert.equal((await dev.status()).state, 'provisioned');
  } finally {
    proc.child.kill('SIGKILL');
  }
});

step('5. disconnected: upload the .mcpr, approve, download the profile, install, complete provisioning', async () => {
  const dev = L.device(work, 'dis1');
  await dev.request(state.pkg, state.pass, 'pump', 'DIS-0001');
  await gotoNav('Provisioning');
  await page.getByRole('heading', { name: 'Provisioning', level: 1 }).waitFor();
  await page.getByLabel('Choose .mcpr files').setInputFiles(dev.mcpr);
  const uploads = page.getByRole('list', { name: 'Uploaded files' });
  await uploads.getByText('Verified and accepted.').waitFor();
  await uploads.getByRole('link', { name: 'DIS-0001' }).waitFor();
  // The same file again: known already, same request.
  await page.getByLabel('Choose .mcpr files').setInputFiles(dev.mcpr);
  await uploads.getByText('Already uploaded.').waitFor();
  await shot('provisioning-upload');

  // The approver's view; a reload on the way keeps the session and its CSRF value.
  await gotoNav('Devices');
  await page.reload();
  await page.getByLabel('Search serial or hardware id').fill('DIS-0001');
  const row = rowOf('DIS-0001');
  await row.getByText('upload', { exact: true }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-row]').length === 1, null, { timeout: L.T(10000) });
  // Escape closes a dialog and gives the focus back.
  const reject = page.getByRole('button', { name: 'Reject DIS-0001' });
  await reject.click();
  const rdlg = page.getByRole('dialog', { name: 'Reject request DIS-0001' });
  await rdlg.getByLabel('Reason for rejecting').waitFor();
  assert.ok(await rdlg.getByLabel('Reason for rejecting').evaluate((el) => el === document.activeElement), 'the reason has the focus');
  await page.keyboard.press('Escape');
  await rdlg.waitFor({ state: 'hidden' });
  assert.ok(await reject.evaluate((el) => el === document.activeElement), 'the focus is back on Reject');
  await page.getByRole('button', { name: 'Approve DIS-0001' }).click();
  const dlg = page.getByRole('dialog', { name: 'Approve request DIS-0001' });
  await dlg.getByRole('button', { name: 'Approve', exact: true }).click();
  await row.getByText('certified', { exact: true }).waitFor();

  // The detail view: identity, certificates, signer, history.
  await row.getByRole('link', { name: 'DIS-0001' }).click();
  await page.getByRole('heading', { name: /Device DIS-0001/, level: 1 }).waitFor();
  const certs = page.getByRole('region', { name: 'Certificates issued' });
  await certs.getByRole('cell', { name: 'tls', exact: true }).waitFor();
  await certs.getByRole('cell', { name: 'sign', exact: true }).waitFor();
  assert.match(await certs.textContent(), /([0-9A-F]{2}:){31}[0-9A-F]{2}/, 'a SHA-256 fingerprint');
  await page.getByText('bootstrap certificate of a provisioning package').waitFor();
  const hist = page.getByRole('region', { name: 'History' });
  await hist.getByText('request.approve').waitFor();
  await shot('device-detail', { fullPage: true });

  // The technician's part on the Provisioning page.
  await gotoNav('Provisioning');
  const ready = page.getByRole('region', { name: 'Certified requests' });
  await ready.getByRole('link', { name: 'DIS-0001' }).waitFor();
  const profile = await download(() => page.getByRole('button', { name: 'Download profile of DIS-0001' }).click(), 'dis1.mccp');
  assert.ok((await stat(profile)).size > 1000, 'the profile download is not empty');
  await dev.install(profile);
  assert.equal((await dev.status()).state, 'provisioned', 'the device installed its profile');
  await page.getByRole('button', { name: 'Complete provisioning of DIS-0001' }).click();
  const cdlg = page.getByRole('dialog', { name: 'Complete provisioning of DIS-0001' });
  await cdlg.getByRole('button', { name: 'Complete provisioning' }).click();
  await page.getByRole('status').filter({ hasText: 'Device DIS-0001 is provisioned' }).waitFor();
  await ready.getByRole('link', { name: 'DIS-0001' }).waitFor({ state: 'detached' });
  await shot('provisioning');
  await gotoNav('Devices');
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await rowOf('DIS-0001').getByText('provisioned', { exact: true }).waitFor();

  // A count filters by its state; bulk approval of rows that cannot be approved shows each row's error.
  await page.getByRole('button', { name: /^Provisioned 2$/ }).click();
  await page.waitForFunction(() => document.querySelectorAll('[data-row]').length === 2, null, { timeout: L.T(10000) });
  assert.equal(await page.getByRole('button', { name: /^Provisioned 2$/ }).getAttribute('aria-pressed'), 'true');
  assert.equal(await page.getByLabel('State', { exact: true }).inputValue(), 'provisioned');
  await page.getByLabel('Select all requests on this page').check();
  await page.getByText('2 selected').waitFor();
  await page.getByRole('button', { name: 'Approve selected' }).click();
  const bulk = page.getByRole('dialog', { name: 'Approve 2 requests' });
  await bulk.getByRole('button', { name: 'Approve 2 requests' }).click();
  await bulk.getByText('0 of 2 approved; 2 failed.').waitFor();
  const errs = bulk.getByRole('list', { name: 'Requests that failed' }).getByRole('listitem');
  assert.equal(await errs.count(), 2);
  assert.match(await errs.first().textContent(), /invalid_state/);
  await shot('devices-bulk-errors');
  await bulk.getByRole('button', { name: 'Close' }).click();
  await bulk.waitFor({ state: 'hidden' });
  await page.getByRole('button', { name: 'Clear filters' }).click();
});

step('6. a tampered .mcpr (one byte flipped) and an oversized file are refused with their errors', async () => {
  const dev = L.device(work, 'dis2');
  await dev.request(state.pkg, state.pass, 'pump', 'DIS-0002');
  const buf = await L.readFile(dev.mcpr);
  const bad = path.join(work, 'tampered.mcpr');
  await L.flipByte(dev.mcpr, bad, Math.floor(buf.length / 2));
  await gotoNav('Provisioning');
  // Dropped on the drop zone (drag and drop), with a file over 64 KiB.
  const files = [
    { name: 'tampered.mcpr', data: [...(await L.readFile(bad))] },
    { name: 'huge.mcpr', data: Array.from({ length: 65 * 1024 + 1 }, (_, i) => i & 0xff) },
  ];
  const dt = await page.evaluateHandle((list) => {
    const d = new DataTransfer();
    for (const f of list) d.items.add(new File([new Uint8Array(f.data)], f.name, { type: 'application/octet-stream' }));
    return d;
  }, files);
  const zone = page.getByText('Drop .mcpr files here');
  await zone.dispatchEvent('dragenter', { dataTransfer: dt });
  await zone.dispatchEvent('drop', { dataTransfer: dt });
  const uploads = page.getByRole('list', { name: 'Uploaded files' });
  const tam = uploads.getByRole('listitem').filter({ hasText: 'tampered.mcpr' });
  await tam.getByText('Refused:').waitFor();
  assert.match(await tam.textContent(), /bad_signature|malformed/, 'the error code is shown');
  const huge = uploads.getByRole('listitem').filter({ hasText: 'huge.mcpr' });
  await huge.getByText('Not sent:').waitFor();
  assert.match(await huge.textContent(), /at most 64 KiB/);
  await shot('provisioning-errors');
  const r = await L.api(server, 'GET', '/api/v1/requests?q=DIS-0002', { token: await L.bearer(server, 'admin', server.adminPassword) });
  assert.equal(r.json.items.length, 0, 'nothing was stored for the tampered file');

  // Reject with a reason (SEL-0001, uploaded in step 4).
  await gotoNav('Devices');
  await page.getByRole('button', { name: 'Reject SEL-0001' }).click();
  const dlg = page.getByRole('dialog', { name: 'Reject request SEL-0001' });
  await dlg.getByRole('button', { name: 'Reject', exact: true }).click();
  await dlg.getByText('Give a reason').waitFor(); // required, next to the field
  await dlg.getByLabel('Reason for rejecting').fill('label does not match the device');
  await dlg.getByRole('button', { name: 'Reject', exact: true }).click();
  await dlg.waitFor({ state: 'hidden' });
  await rowOf('SEL-0001').getByText('rejected', { exact: true }).waitFor();
  await rowOf('SEL-0001').getByRole('link', { name: 'SEL-0001' }).click();
  await page.getByText('label does not match the device').first().waitFor();
});

step('7. the audit page shows these actions and the chain verifies', async () => {
  await gotoNav('Audit');
  const table = page.getByRole('region', { name: 'Audit entries' });
  for (const a of ['system.create', 'system.update', 'package.create', 'policy.set', 'request.approve', 'request.reject', 'device.complete', 'device.provisioned']) {
    await table.getByText(a, { exact: true }).first().waitFor();
  }
  // Paging with a cursor stack.
  await page.getByLabel('Entries per page').selectOption('10');
  await page.getByText('Page 1', { exact: true }).waitFor();
  const first = await table.locator('tbody tr').first().textContent();
  await page.getByRole('button', { name: 'Next page' }).click();
  await page.getByText('Page 2', { exact: true }).waitFor();
  assert.notEqual(await table.locator('tbody tr').first().textContent(), first);
  await page.getByRole('button', { name: 'Previous page' }).click();
  await page.getByText('Page 1', { exact: true }).waitFor();
  assert.equal(await table.locator('tbody tr').first().textContent(), first);
  await page.getByLabel('Entries per page').selectOption('50');

  await page.getByLabel('What').fill('request.approve');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('.table-audit tbody tr td:nth-child(5)')].map((c) => c.textContent);
    return cells.length === 2 && cells.every((c) => c === 'request.approve');
  }, null, { timeout: L.T(10000) });
  await table.getByRole('cell', { name: 'user:admin' }).first().waitFor();
  await page.getByRole('button', { name: 'Verify chain' }).click();
  await page.getByText('Chain verified.').waitFor();
  assert.match(await page.locator('.verify-ok').textContent(), /\d+ entries/);
  await shot('audit');
});

step('8. a narrow window: no page-wide horizontal scroll; the table scrolls in its own region', async () => {
  const narrow = await L.newPage(browser, { width: 400, height: 800 });
  try {
    await L.signIn(narrow, server, 'admin', server.adminPassword);
    await narrow.getByRole('region', { name: 'Requests table' }).getByRole('link', { name: 'DIS-0001' }).waitFor();
    const m = await narrow.evaluate(() => {
      const w = document.querySelector('.table-wrap');
      return { page: document.documentElement.scrollWidth, view: window.innerWidth, inner: w.scrollWidth, outer: w.clientWidth };
    });
    assert.ok(m.page <= m.view + 1, `the page is ${m.page}px wide in a ${m.view}px window`);
    assert.ok(m.inner > m.outer, 'the requests table scrolls horizontally in its region');
    await L.shot(narrow, 'devices-narrow');
    await narrow.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Provisioning' }).click();
    await narrow.getByRole('heading', { name: 'Provisioning', level: 1 }).waitFor();
    assert.ok(await narrow.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
    await L.shot(narrow, 'provisioning-narrow');
    assert.deepEqual(narrow.problems, []);
  } finally {
    await narrow.context().close();
  }
});
