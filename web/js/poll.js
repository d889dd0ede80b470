// Polling that pauses while the tab is hidden and never overlaps itself.

/** Call fn every ms milliseconds while the page is visible; returns stop(). */
export function poll(fn, ms) {
  let timer = null;
  let running = false;
  let stopped = false;

  async function tick() {
    timer = null;
    if (stopped || document.hidden) return;
    if (!running) {
      running = true;
      try {
        await fn();
      } catch {
        /* the page shows its own errors; keep polling */
      } finally {
        running = false;
      }
    }
    schedule();
  }

  function schedule() {
    if (!stopped && !document.hidden && timer === null) timer = setTimeout(tick, ms);
  }

  function onVisibility() {
    if (document.hidden) {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    } else if (timer === null) {
      tick();
    }
  }

  document.addEventListener('visibilitychange', onVisibility);
  schedule();
  return function stop() {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    document.removeEventListener('visibilitychange', onVisibility);
  };
}
