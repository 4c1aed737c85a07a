// node:async_hooks - AsyncLocalStorage over V8's continuation-preserved embedder data, which V8 carries
// across promise jobs (await, then) the way Node's async context does; AsyncResource for callbacks.
(function () {
const { core } = __bootstrap;
const getContext = () => core.getAsyncContext?.() ?? core.ops.op_get_continuation_preserved_embedder_data?.();
const setContext = (v) => (core.setAsyncContext ? core.setAsyncContext(v) : core.ops.op_set_continuation_preserved_embedder_data(v));

// The context is an immutable Map from storage to value; each run swaps it and restores it.
function current() {
  const c = getContext();
  return c instanceof Map ? c : undefined;
}

class AsyncLocalStorage {
  #enabled = true;
  getStore() {
    if (!this.#enabled) return undefined;
    return current()?.get(this);
  }
  run(store, callback, ...args) {
    const prev = getContext();
    const next = new Map(current() ?? []);
    next.set(this, store);
    this.#enabled = true;
    setContext(next);
    try {
      return callback(...args);
    } finally {
      setContext(prev);
    }
  }
  exit(callback, ...args) {
    const prev = getContext();
    const next = new Map(current() ?? []);
    next.delete(this);
    setContext(next);
    try {
      return callback(...args);
    } finally {
      setContext(prev);
    }
  }
  enterWith(store) {
    const next = new Map(current() ?? []);
    next.set(this, store);
    setContext(next);
  }
  disable() {
    this.#enabled = false;
  }
  static bind(fn) {
    return AsyncResource.bind(fn);
  }
  static snapshot() {
    const ctx = getContext();
    return (fn, ...args) => {
      const prev = getContext();
      setContext(ctx);
      try {
        return fn(...args);
      } finally {
        setContext(prev);
      }
    };
  }
}

class AsyncResource {
  #ctx;
  constructor(type) {
    this.type = type;
    this.#ctx = getContext();
  }
  runInAsyncScope(fn, thisArg, ...args) {
    const prev = getContext();
    setContext(this.#ctx);
    try {
      return fn.apply(thisArg, args);
    } finally {
      setContext(prev);
    }
  }
  bind(fn, thisArg) {
    return (...args) => this.runInAsyncScope(fn, thisArg, ...args);
  }
  static bind(fn, type, thisArg) {
    return new AsyncResource(type ?? "bound-anonymous-fn").bind(fn, thisArg);
  }
  emitDestroy() {
    return this;
  }
  asyncId() {
    return 0;
  }
  triggerAsyncId() {
    return 0;
  }
}

const hooks = {
  AsyncLocalStorage,
  AsyncResource,
  createHook: () => ({ enable() { return this; }, disable() { return this; } }),
  executionAsyncId: () => 0,
  triggerAsyncId: () => 0,
  executionAsyncResource: () => ({}),
};
hooks.default = hooks;
return hooks;
})();
