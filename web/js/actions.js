// Request actions shared by the Devices, device detail and Provisioning
// pages: approve and reject (one or many, with progress), download the
// certified profile, complete provisioning.
import * as api from './api.js';
import { h, field, setFieldError, errorLine, toast, saveBlob, errorBox } from './dom.js';
import { openDialog, confirmDialog } from './dialog.js';

const PARALLEL = 4;

function rowLine(r) {
  return [h('strong', { text: r.serial || r.request_id }), ` · ${r.system} / ${r.component}`];
}

/**
 * Approve or reject rows ([{request_id, serial, system, component}]) after a
 * dialog; onDone(results) with [{row, ok, answer|error}].
 */
export function decide(kind, rows, onDone) {
  const approve = kind === 'approve';
  const n = rows.length;
  const noun = n === 1 ? `request ${rows[0].serial}` : `${n} requests`;
  const verb = approve ? 'Approve' : 'Reject';
  const list = h('ul', { class: 'dialog-list' },
    rows.slice(0, 8).map((r) => h('li', null, rowLine(r))),
    n > 8 ? h('li', { class: 'muted', text: `and ${n - 8} more` }) : null);
  const intro = approve
    ? 'The CA issues the certificates of each request at once. A connected device then downloads and installs its profile by itself; for a disconnected device, a technician downloads the profile on the Provisioning page.'
    : 'A rejected request cannot be approved later: the device has to make a new request. The reason is kept in the audit trail and told to the device.';
  let reason = null;
  let reasonField = null;
  if (!approve) {
    reason = h('textarea', { rows: '3', maxlength: '256', required: true, autofocus: true });
    reasonField = field('Reason for rejecting', reason, { hint: 'Required. At most 256 characters.' });
  }
  const progress = h('progress', { max: String(n), value: '0' });
  const progressText = h('p', { class: 'progress-text', 'aria-live': 'polite' });
  const progressWrap = h('div', { class: 'progress', hidden: true }, progressText, progress);
  const errors = h('ul', { class: 'result-list', hidden: true, 'aria-label': 'Requests that failed' });
  const summary = errorBox();
  const ok = h('button', {
    type: 'button',
    class: approve ? 'button primary' : 'button danger',
    text: n === 1 ? verb : `${verb} ${n} requests`,
    autofocus: approve ? true : undefined,
  });
  const cancel = h('button', { type: 'button', class: 'button', text: 'Cancel' });
  const d = openDialog({
    title: `${verb} ${noun}`,
    body: [h('p', { text: intro }), list, reasonField ? reasonField.wrap : null, progressWrap, summary, errors],
    actions: [cancel, ok],
  });
  cancel.addEventListener('click', () => d.close());
  ok.addEventListener('click', async () => {
    let body;
    if (!approve) {
      const text = reason.value.trim();
      if (!text) {
        setFieldError(reason, 'Give a reason: it is recorded and told to the device.');
        reason.focus();
        return;
      }
      setFieldError(reason, '');
      body = { reason: text };
    }
    d.setBusy(true);
    ok.disabled = true;
    cancel.disabled = true;
    if (reason) reason.readOnly = true;
    progressWrap.hidden = false;
    const results = new Array(n);
    let done = 0;
    const label = approve ? 'Approving' : 'Rejecting';
    const show = () => {
      progress.value = done;
      progressText.textContent = `${label}… ${done} of ${n} done`;
    };
    show();
    let next = 0;
    async function worker() {
      while (next < n) {
        const i = next++;
        const row = rows[i];
        try {
          const answer = await api.post(`/api/v1/requests/${api.enc(row.request_id)}/${kind}`, body);
          results[i] = { row, ok: true, answer };
        } catch (e) {
          results[i] = { row, ok: false, error: e };
        }
        done += 1;
        show();
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL, n) }, worker));
    d.setBusy(false);
    const failed = results.filter((r) => !r.ok);
    const good = n - failed.length;
    const past = approve ? 'Approved' : 'Rejected';
    if (onDone) onDone(results);
    if (failed.length === 0) {
      d.close();
      toast(n === 1 ? `${past} ${rows[0].serial}.` : `${past} ${n} requests.`);
      return;
    }
    progressText.textContent = `${good} of ${n} ${past.toLowerCase()}; ${failed.length} failed.`;
    summary.show(`${failed.length} of ${n} could not be ${past.toLowerCase()}:`);
    errors.replaceChildren(...failed.map((r) =>
      h('li', { class: 'result-error' }, rowLine(r.row), h('span', { class: 'result-msg', text: ` — ${errorLine(r.error)}` }))));
    errors.hidden = false;
    ok.hidden = true;
    cancel.disabled = false;
    cancel.textContent = 'Close';
    cancel.focus();
  });
}

/** Download a request's certified profile (.mccp). Throws ApiError. */
export async function downloadProfile(row) {
  const { blob, filename } = await api.call('GET', `/api/v1/requests/${api.enc(row.request_id)}/profile`, {
    blob: true,
    filename: `${row.serial || row.request_id}.mccp`,
  });
  if (!blob.size) throw new Error('The profile download was empty.');
  saveBlob(blob, filename);
  return filename;
}

/** Complete provisioning after a confirmation; resolves the request, or null if cancelled. */
export async function complete(row) {
  const yes = await confirmDialog({
    title: `Complete provisioning of ${row.serial}`,
    text: [
      'Do this once the certified profile is installed on the device.',
      'The request becomes provisioned; this is recorded in the audit trail.',
    ],
    confirmLabel: 'Complete provisioning',
  });
  if (!yes) return null;
  return api.post(`/api/v1/requests/${api.enc(row.request_id)}/complete`);
}
