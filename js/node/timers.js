// node:timers - the global timers, and timers/promises.
(function () {
const { core } = __bootstrap;
const timers = {
  setTimeout: (...a) => globalThis.setTimeout(...a),
  clearTimeout: (id) => globalThis.clearTimeout(id),
  setInterval: (...a) => globalThis.setInterval(...a),
  clearInterval: (id) => globalThis.clearInterval(id),
  setImmediate: (...a) => globalThis.setImmediate(...a),
  clearImmediate: (id) => globalThis.clearImmediate(id),
  get promises() {
    return core.loadExtScript("ext:codestep/node/timers_promises.js");
  },
};
timers.default = timers;
return timers;
})();
