// Modal dialogs on the native <dialog> element: showModal() keeps focus
// inside, Escape closes (unless the dialog is busy), and focus goes back to
// the control that opened it.
import { h, nextId, focusKey, restoreFocus } from './dom.js';

/**
 * openDialog({title, body: [nodes], actions: [buttons], onClose})
 * → {el, body, actions, close(), setBusy(bool)}.
 * Put `autofocus` on the control that should have focus first.
 */
export function openDialog({ title, body = [], actions = [], onClose, wide = false }) {
  const opener = document.activeElement;
  const openerKey = focusKey();
  const titleId = nextId('dlg');
  const bodyEl = h('div', { class: 'dialog-body' }, body);
  const actionsEl = h('div', { class: 'dialog-actions' }, actions);
  const el = h('dialog', { class: ['dialog', wide ? 'dialog-wide' : null], 'aria-labelledby': titleId },
    h('h2', { id: titleId, class: 'dialog-title', text: title }),
    bodyEl,
    actionsEl);
  let busy = false;
  el.addEventListener('cancel', (ev) => {
    if (busy) ev.preventDefault();
  });
  el.addEventListener('close', () => {
    el.remove();
    if (onClose) onClose();
    if (opener && opener.isConnected && typeof opener.focus === 'function') {
      opener.focus();
      return;
    }
    // The control that opened it was re-rendered (a poll) or is gone (the
    // row changed state): its replacement, else the page heading.
    const main = document.getElementById('main');
    if (main) restoreFocus(main, openerKey);
    if (document.activeElement === document.body && main) {
      const h1 = main.querySelector('h1');
      (h1 || main).focus();
    }
  });
  document.body.appendChild(el);
  el.showModal();
  if (!el.querySelector('[autofocus]')) {
    const first = el.querySelector('input, textarea, select, button');
    if (first) first.focus();
  }
  return {
    el,
    body: bodyEl,
    actions: actionsEl,
    close() {
      if (el.open) el.close();
    },
    setBusy(b) {
      busy = b;
      el.classList.toggle('is-busy', b);
    },
  };
}

/** A yes/no dialog; resolves true when confirmed. */
export function confirmDialog({ title, text, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h('button', { type: 'button', class: danger ? 'button danger' : 'button primary', text: confirmLabel, autofocus: true });
    const cancel = h('button', { type: 'button', class: 'button', text: 'Cancel' });
    const d = openDialog({
      title,
      body: (Array.isArray(text) ? text : [text]).map((t) => (t instanceof Node ? t : h('p', { text: t }))),
      actions: [cancel, ok],
      onClose: () => resolve(answer),
    });
    ok.addEventListener('click', () => {
      answer = true;
      d.close();
    });
    cancel.addEventListener('click', () => d.close());
  });
}
