// node:timers/promises - setTimeout, setImmediate and setInterval as promises and async iterators.
(function () {
function abortable(signal, reject, cleanup) {
  if (!signal) return;
  if (signal.aborted) {
    cleanup();
    reject(signal.reason ?? new DOMException("The operation was aborted", "AbortError"));
    return;
  }
  signal.addEventListener("abort", () => {
    cleanup();
    reject(signal.reason ?? new DOMException("The operation was aborted", "AbortError"));
  }, { once: true });
}
function setTimeout(delay, value, options) {
  return new Promise((resolve, reject) => {
    const id = globalThis.setTimeout(() => resolve(value), delay);
    abortable(options?.signal, reject, () => globalThis.clearTimeout(id));
  });
}
function setImmediate(value, options) {
  return new Promise((resolve, reject) => {
    const id = globalThis.setTimeout(() => resolve(value), 0);
    abortable(options?.signal, reject, () => globalThis.clearTimeout(id));
  });
}
async function* setInterval(delay, value, options) {
  while (true) {
    await setTimeout(delay, undefined, options);
    yield value;
  }
}
const scheduler = { wait: (delay, options) => setTimeout(delay, undefined, options), yield: () => setImmediate() };
const m = { setTimeout, setImmediate, setInterval, scheduler };
m.default = m;
return m;
})();
