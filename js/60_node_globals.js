// The Node globals a step or a package may expect: `global`, `self`, `navigator`, `setImmediate`,
// `clearImmediate`, and `Buffer` and `process`, which load their module (js/node/) the first time they are
// touched, so that a step that never uses them does not pay for them. Runs once, at snapshot time.

import { core, primordials } from "ext:core/mod.js";

const { ObjectDefineProperty, ObjectFreeze, SafeMap } = primordials;

function define(name, value) {
  ObjectDefineProperty(globalThis, name, { value, writable: true, enumerable: false, configurable: true });
}

// Replaced by a plain value on first read (or on assignment).
function lazy(name, script, pick) {
  ObjectDefineProperty(globalThis, name, {
    get() {
      const value = pick(core.loadExtScript(script));
      define(name, value);
      return value;
    },
    set(value) {
      define(name, value);
    },
    enumerable: false,
    configurable: true,
  });
}

lazy("Buffer", "ext:codestep/node/buffer.js", (m) => m.Buffer);
lazy("process", "ext:codestep/node/process.js", (m) => m.default);

define("global", globalThis);
define("self", globalThis);

class Navigator {}
const navigator = new Navigator();
ObjectDefineProperty(Navigator.prototype, "userAgent", { get: () => core.ops.op_codestep_user_agent(), enumerable: true, configurable: true });
ObjectDefineProperty(Navigator.prototype, "hardwareConcurrency", { value: 1, enumerable: true, configurable: true });
ObjectDefineProperty(Navigator.prototype, "language", { value: "en-US", enumerable: true, configurable: true });
ObjectDefineProperty(Navigator.prototype, "languages", { value: ObjectFreeze(["en-US"]), enumerable: true, configurable: true });
define("Navigator", Navigator);
define("navigator", navigator);

// setImmediate: a macrotask, after the promise jobs queued so far, as in Node.
const immediates = new SafeMap();
let nextImmediate = 1;
class Immediate {
  #id;
  constructor(id) {
    this.#id = id;
  }
  ref() {
    return this;
  }
  unref() {
    return this;
  }
  hasRef() {
    return true;
  }
  get _id() {
    return this.#id;
  }
  [Symbol.toPrimitive]() {
    return this.#id;
  }
}
function setImmediate(callback, ...args) {
  if (typeof callback !== "function") {
    throw new TypeError(`The "callback" argument must be of type function. Received ${typeof callback}`);
  }
  const id = nextImmediate++;
  const handle = new Immediate(id);
  immediates.set(id, globalThis.setTimeout(() => {
    immediates.delete(id);
    callback(...args);
  }, 0));
  return handle;
}
function clearImmediate(handle) {
  if (handle == null) return;
  const id = typeof handle === "object" ? handle._id : handle;
  const timer = immediates.get(id);
  if (timer !== undefined) {
    immediates.delete(id);
    globalThis.clearTimeout(timer);
  }
}
define("setImmediate", setImmediate);
define("clearImmediate", clearImmediate);
