// Helpers of the browser tests: a real custosd on a loopback port with a
// fresh data directory, the operator API from Node (trusting only the data
// directory's root.pem), custos-device, and Debian's chromium through
// playwright-core.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, readFile, writeFile, copyFile } from 'node:fs/promises';
import { existsSync, createWriteStream } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SRC = path.resolve(HERE, '..', '..');
export const SCREENSHOTS = path.join(HERE, 'screenshots');

// ASan builds are several times slower: every wait scales with this.
export const SLOW = process.env.CUSTOS_SANITIZE === 'ON' || /asan/i.test(process.env.CUSTOS_BIN || '') ? 3 : 1;
export const T = (ms) => ms * SLOW;

const BUILD = path.resolve(process.env.CUSTOS_BIN || path.join(SRC, 'build'));

/** A binary of the build directory (top level, or where CMake put it). */
export function bin(name) {
  for (const c of [path.join(BUILD, name), path.join(BUILD, 'server', name), path.join(BUILD, 'tools', 'device', name), path.join(BUILD, 'tools', 'custos', name)]) {
    if (existsSync(c)) return c;
  }
  throw new Error(`${name} is not in ${BUILD} (build first)`);
}

export function run(file, args, { timeout = T(60000), env } = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout, env: { ...process.env, ...env }, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err) {
        err.message = `${path.basename(file)} ${args.join(' ')}: ${err.message}\n${stderr}`;
        reject(err);
      } else resolve({ stdout, stderr });
    });
  });
}

// ---- the server ----------------------------------------------------------------------

/**
 * A fresh data directory and `custosd serve` on 127.0.0.1, a free port.
 * → {url, port, dir, tmp, rootPem, adminPassword, spki, log(), stop()}
 */
export async function startServer({ pollInterval = 1 } = {}) {
  const base = process.env.TMPDIR || os.tmpdir();
  const tmp = await mkdtemp(path.join(base, 'custos-browser-'));
  const dir = path.join(tmp, 'data');
  const custosd = bin('custosd');
  const init = await run(custosd, ['init', '--data', dir]);
  const m = /password: ([A-Za-z0-9_-]+)/.exec(init.stdout + init.stderr);
  if (!m) throw new Error(`custosd init printed no password:\n${init.stdout}${init.stderr}`);
  const args = ['serve', '--data', dir, '--listen', '127.0.0.1:0', '--quiet', '--poll-interval', String(pollInterval)];
  if (process.env.CUSTOS_WEB_DIR) args.push('--web-dir', process.env.CUSTOS_WEB_DIR);
  const child = spawn(custosd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const logPath = path.join(tmp, 'custosd.log');
  const logFile = createWriteStream(logPath);
  let logText = '';
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`custosd did not start:\n${logText}`)), T(20000));
    child.stderr.on('data', (d) => {
      logFile.write(d);
      logText = (logText + d.toString()).slice(-200000);
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const j = JSON.parse(line);
          if (j.event === 'listening' && j.port) {
            clearTimeout(timer);
            resolve(j.port);
          }
        } catch {
          /* not a JSON line */
        }
      }
    });
    exit.then(() => {
      clearTimeout(timer);
      reject(new Error(`custosd exited before listening:\n${logText}`));
    });
  });
  const url = `https://127.0.0.1:${port}`;
  const rootPem = await readFile(path.join(dir, 'root.pem'));
  const spki = await serverSpki(port, rootPem);
  return {
    url,
    port,
    dir,
    tmp,
    rootPem,
    spki,
    adminPassword: m[1],
    log: () => logText,
    /** SIGTERM and wait; rejects when custosd does not exit 0 (ASan reports, a crash). */
    async stop({ keep = false } = {}) {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), T(15000));
        await exit;
        clearTimeout(t);
      }
      logFile.end();
      if (!keep && process.env.CUSTOS_KEEP_TMP !== '1') await rm(tmp, { recursive: true, force: true });
      if (exited.code !== 0) throw new Error(`custosd exited ${exited.code ?? exited.signal} after SIGTERM:\n${logText.slice(-4000)}`);
    },
  };
}

/**
 * The base64 SHA-256 of the server certificate's SubjectPublicKeyInfo, for
 * chromium's --ignore-certificate-errors-spki-list. The certificate is
 * checked first: it must chain to the data directory's root.pem and name
 * 127.0.0.1, so only that certificate is trusted and nothing else.
 */
async function serverSpki(port, rootPem) {
  const raw = await new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: rootPem, servername: undefined, rejectUnauthorized: true }, () => {
      const c = s.getPeerCertificate();
      s.end();
      resolve(c.raw);
    });
    s.on('error', reject);
    s.setTimeout(T(10000), () => s.destroy(new Error('TLS handshake timed out')));
  });
  const der = new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

// ---- the operator API from Node ------------------------------------------------------------

/** api(server, method, path, {token, json, body, type}) → {status, headers, body: Buffer, json} */
export function api(server, method, p, { token, json, body, type, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let data = null;
    if (json !== undefined) {
      data = Buffer.from(JSON.stringify(json));
      h['Content-Type'] = 'application/json';
    } else if (body !== undefined) {
      data = Buffer.from(body);
      h['Content-Type'] = type;
    }
    if (data) h['Content-Length'] = String(data.length);
    if (token) h.Authorization = `Bearer ${token}`;
    const req = https.request(`${server.url}${p}`, { method, headers: h, ca: server.rootPem, timeout: T(20000) }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        let j = null;
        try {
          j = JSON.parse(b.toString());
        } catch {
          j = null;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: b, json: j });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p} timed out`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

export async function bearer(server, username, password) {
  const r = await api(server, 'POST', '/api/v1/session', { json: { username, password, kind: 'bearer' } });
  if (r.status !== 200 || !r.json.token) throw new Error(`sign-in as ${username}: ${r.status} ${r.body}`);
  return r.json.token;
}

/** Poll fn until it returns a truthy value; bounded. */
export async function until(fn, { timeout = T(30000), every = 200, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// ---- devices ------------------------------------------------------------------------------

/** custos-device with its own device directory and secret under dir. */
export function device(dir, name) {
  const exe = bin('custos-device');
  const devDir = path.join(dir, `dev-${name}`);
  const secret = path.join(dir, `${name}.secret`);
  const env = { CUSTOS_SECRET_FILE: path.join(dir, 'default-device-secret') };
  return {
    devDir,
    mcpr: path.join(devDir, 'request.mcpr'),
    /** Offline identity generation (keeps the package). */
    request: (pkg, passFile, component, serial) => run(exe, ['request', '--package', pkg, '--passphrase-file', passFile,
      '--component', component, '--serial', serial, '--device-dir', devDir, '--secret-file', secret, '--keep-package'], { env }),
    install: (profile) => run(exe, ['install', '--device-dir', devDir, '--secret-file', secret, '--profile', profile], { env }),
    status: async () => JSON.parse((await run(exe, ['status', '--device-dir', devDir, '--secret-file', secret, '--json'], { env })).stdout),
    /** Connected provisioning in the background: → {child, done: Promise<{code, stderr}>} */
    provision(pkg, passFile, component, serial, url, timeoutS) {
      const child = spawn(exe, ['provision', '--package', pkg, '--passphrase-file', passFile, '--component', component,
        '--serial', serial, '--device-dir', devDir, '--secret-file', secret, '--server', url, '--timeout', String(timeoutS)],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      child.stdout.on('data', () => {});
      const done = new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
      return { child, done };
    },
  };
}

export async function flipByte(src, dst, offset) {
  const b = await readFile(src);
  b[offset] ^= 0x01;
  await writeFile(dst, b);
}

export { mkdir, writeFile, readFile, copyFile };

// ---- the browser ----------------------------------------------------------------------------

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Debian's chromium, trusting only the server's key (by its SPKI hash). */
export async function launch(server) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: T(30000),
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--disable-dev-shm-usage',
      '--disable-gpu',
      `--ignore-certificate-errors-spki-list=${server.spki}`,
    ],
  });
}

/**
 * A page in a new context (its own cookies and sessionStorage); console
 * errors, page errors and CSP violations are collected in page.problems.
 */
export async function newPage(browser, { width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true, locale: 'en-GB', timezoneId: 'UTC' });
  context.setDefaultTimeout(T(10000));
  context.setDefaultNavigationTimeout(T(20000));
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    const t = m.text();
    // An API answer of 4xx is logged by chromium as a failed resource: expected in negative tests.
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(t)) page.problems.push(`console: ${t}`);
  });
  return page;
}

export async function shot(page, name, { fullPage = false } = {}) {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage });
}

export async function signIn(page, server, username, password) {
  await page.goto(`${server.url}/`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/**
 * Every visible form control of the page has a label (a <label> or
 * aria-label), and every button and link has a name; returns the offenders.
 */
export function unlabelled(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden') continue;
      const named = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named) bad.push(el.outerHTML.slice(0, 120));
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (!(el.textContent.trim() || el.getAttribute('aria-label'))) bad.push(el.outerHTML.slice(0, 120));
    }
    return bad;
  });
}

/** Text a rendering bug leaves behind ("null", "undefined", "[object Object]", "NaN"). */
export async function junkText(page) {
  const text = await page.evaluate(() => document.body.innerText);
  return (text.match(/\b(null|undefined|NaN)\b|\[object \w+\]/g) || []);
}
