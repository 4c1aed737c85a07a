// node:util - promisify, callbackify, inspect (deno_web's formatter, Node-like), format, inherits,
// deprecate, types, isDeepStrictEqual, TextEncoder/TextDecoder, and the legacy is* checks.
(function () {
const { core, primordials } = __bootstrap;
const { Error, Promise, Symbol, SymbolFor, TypeError } = primordials;
const consoleImpl = core.loadExtScript("ext:deno_web/01_console.js");
const types = core.loadExtScript("ext:codestep/node/util_types.js");

const kCustomPromisify = SymbolFor("nodejs.util.promisify.custom");
const kCustomInspect = SymbolFor("nodejs.util.inspect.custom");

function promisify(original) {
  if (typeof original !== "function") {
    const e = new TypeError(`The "original" argument must be of type function. Received ${typeof original}`);
    e.code = "ERR_INVALID_ARG_TYPE";
    throw e;
  }
  if (original[kCustomPromisify]) {
    const fn = original[kCustomPromisify];
    return Object.defineProperty(fn, kCustomPromisify, { value: fn, enumerable: false, writable: false, configurable: true });
  }
  function fn(...args) {
    return new Promise((resolve, reject) => {
      original.call(this, ...args, (err, ...values) => {
        if (err) reject(err);
        else resolve(values.length > 1 ? values : values[0]);
      });
    });
  }
  Object.setPrototypeOf(fn, Object.getPrototypeOf(original));
  Object.defineProperty(fn, kCustomPromisify, { value: fn, enumerable: false, writable: false, configurable: true });
  return Object.defineProperties(fn, Object.getOwnPropertyDescriptors(original));
}
promisify.custom = kCustomPromisify;

function callbackify(original) {
  if (typeof original !== "function") throw new TypeError('The "original" argument must be of type function');
  return function (...args) {
    const cb = args.pop();
    if (typeof cb !== "function") throw new TypeError("The last argument must be of type function");
    original.apply(this, args).then(
      (v) => queueMicrotask(() => cb(null, v)),
      (err) => {
        if (!err) {
          const e = new Error("Promise was rejected with a falsy value");
          e.reason = err;
          err = e;
        }
        queueMicrotask(() => cb(err));
      },
    );
  };
}

function inspect(value, opts, ...rest) {
  let options = { colors: false };
  if (typeof opts === "object" && opts !== null) options = { ...options, ...opts };
  else if (typeof opts === "boolean") {
    options.showHidden = opts;
    if (rest[0] !== undefined) options.depth = rest[0];
    if (rest[1] !== undefined) options.colors = rest[1];
  }
  if (options.colors === undefined) options.colors = false;
  if (options.depth === null) options.depth = Infinity;
  return consoleImpl.inspect(value, options);
}
inspect.custom = kCustomInspect;
inspect.defaultOptions = { depth: 2, colors: false, showHidden: false };
inspect.colors = { __proto__: null };
inspect.styles = { __proto__: null };

function formatWithOptions(inspectOptions, ...args) {
  const first = args[0];
  let out = "";
  let a = 0;
  if (typeof first === "string") {
    a = 1;
    let last = 0;
    for (let i = 0; i < first.length - 1; i++) {
      if (first.charCodeAt(i) !== 37) continue; // %
      const c = first[i + 1];
      let rep;
      if (c === "%") {
        out += first.slice(last, i) + "%";
        last = i + 2;
        i++;
        continue;
      }
      if (a >= args.length) continue;
      switch (c) {
        case "s": {
          const v = args[a++];
          rep = typeof v === "string" ? v : typeof v === "bigint" ? `${v}n` : typeof v === "object" && v !== null ? inspect(v, { ...inspectOptions, depth: 0 }) : String(v);
          break;
        }
        case "d":
        case "i": {
          const v = args[a++];
          rep = typeof v === "bigint" ? `${v}n` : typeof v === "symbol" ? "NaN" : c === "i" ? `${parseInt(v)}` : `${Number(v)}`;
          break;
        }
        case "f":
          rep = `${parseFloat(args[a++])}`;
          break;
        case "j":
          try {
            rep = JSON.stringify(args[a++]);
          } catch {
            rep = "[Circular]";
          }
          break;
        case "o":
          rep = inspect(args[a++], { ...inspectOptions, showHidden: true, depth: 4 });
          break;
        case "O":
          rep = inspect(args[a++], inspectOptions);
          break;
        case "c":
          a++;
          rep = "";
          break;
        default:
          continue;
      }
      out += first.slice(last, i) + rep;
      last = i + 2;
      i++;
    }
    out += first.slice(last);
  }
  for (; a < args.length; a++) {
    const v = args[a];
    out += (out.length || a > 0 ? " " : "") + (typeof v === "string" ? v : inspect(v, inspectOptions));
  }
  return out;
}
function format(...args) {
  return formatWithOptions({}, ...args);
}

function inherits(ctor, superCtor) {
  if (ctor === undefined || ctor === null) throw new TypeError('The "ctor" argument must be of type function');
  if (superCtor === undefined || superCtor === null) throw new TypeError('The "superCtor" argument must be of type function');
  if (superCtor.prototype === undefined) throw new TypeError('The "superCtor.prototype" property must be of type object');
  Object.defineProperty(ctor, "super_", { value: superCtor, writable: true, configurable: true });
  Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
}

const warned = new Set();
function deprecate(fn, msg, code) {
  let done = false;
  return function deprecated(...args) {
    if (!done && !(code && warned.has(code))) {
      done = true;
      if (code) warned.add(code);
      console.warn(`DeprecationWarning: ${msg}`);
    }
    return new.target ? Reflect.construct(fn, args, new.target) : fn.apply(this, args);
  };
}

function isDeepStrictEqual(a, b) {
  try {
    core.loadExtScript("ext:codestep/node/assert.js").strict.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

function debuglog() {
  const log = () => {};
  log.enabled = false;
  return log;
}

function toUSVString(s) {
  return `${s}`.toWellFormed();
}

function stripVTControlCharacters(s) {
  return `${s}`.replace(/\u001b\[[0-9;]*[A-Za-z]/g, "");
}

function getSystemErrorName(n) {
  return `Unknown system error ${n}`;
}

function parseArgs() {
  throw new Error("util.parseArgs is not available in a step: steps have no command line");
}

const util = {
  promisify,
  callbackify,
  inspect,
  format,
  formatWithOptions,
  inherits,
  deprecate,
  debuglog,
  debug: debuglog,
  isDeepStrictEqual,
  types,
  TextEncoder: globalThis.TextEncoder,
  TextDecoder: globalThis.TextDecoder,
  toUSVString,
  stripVTControlCharacters,
  getSystemErrorName,
  parseArgs,
  isArray: Array.isArray,
  isBoolean: (v) => typeof v === "boolean",
  isNull: (v) => v === null,
  isNullOrUndefined: (v) => v === null || v === undefined,
  isNumber: (v) => typeof v === "number",
  isString: (v) => typeof v === "string",
  isSymbol: (v) => typeof v === "symbol",
  isUndefined: (v) => v === undefined,
  isRegExp: types.isRegExp,
  isObject: (v) => v !== null && typeof v === "object",
  isDate: types.isDate,
  isError: (v) => v instanceof Error || types.isNativeError(v),
  isFunction: (v) => typeof v === "function",
  isPrimitive: (v) => v === null || (typeof v !== "object" && typeof v !== "function"),
  isBuffer: (v) => globalThis.Buffer.isBuffer(v),
};
util.default = util;
return util;
})();
