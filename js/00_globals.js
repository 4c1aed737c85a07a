// Installs the web platform globals a step may rely on, taken from deno_web, plus our own console and
// Web Crypto (deno_crypto, on first use). Runs once, at snapshot time: nothing here may call an op at module top level.

import { core, internals, primordials } from "ext:core/mod.js";

const {
  ArrayBufferIsView,
  ArrayIsArray,
  ArrayPrototypeIncludes,
  ArrayPrototypePush,
  FunctionPrototypeApply,
  FunctionPrototypeBind,
  FunctionPrototypeCall,
  Number,
  NumberIsFinite,
  ObjectAssign,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ObjectKeys,
  ObjectPrototypeIsPrototypeOf,
  ObjectSetPrototypeOf,
  ReflectDeleteProperty,
  ReflectOwnKeys,
  SafeMap,
  StringPrototypeSlice,
  TypedArrayPrototypeGetSymbolToStringTag,
  TypedArrayPrototypeSlice,
  TypeErrorPrototype,
  uncurryThis,
} = primordials;

const webidl = core.loadExtScript("ext:deno_webidl/00_webidl.js");
const url = core.loadExtScript("ext:deno_web/00_url.js");
const domException = core.loadExtScript("ext:deno_web/01_dom_exception.js");
const consoleImpl = core.loadExtScript("ext:deno_web/01_console.js");
const event = core.loadExtScript("ext:deno_web/02_event.js");
const structuredCloneImpl = core.loadExtScript("ext:deno_web/02_structured_clone.js");
// structuredClone is ours (`src/engine/clone.rs`), not deno_core's: any object a step makes can claim to
// be a host object (its brand is a `Symbol.for`), and deno_core's op aborted the process on data it had
// no deserializer for. deno_web's streams take `structuredClone` from this module when they load
// (below), so it is replaced here, before they do, for `Response.clone()`'s tee as well.
function structuredClone(value) {
  try {
    return core.ops.op_codestep_structured_clone(value, core.getCloneableDeserializers());
  } catch (e) {
    if (ObjectPrototypeIsPrototypeOf(TypeErrorPrototype, e)) {
      throw new domException.DOMException(e.message, "DataCloneError");
    }
    throw e;
  }
}
structuredCloneImpl.structuredClone = structuredClone;
const timers = core.loadExtScript("ext:deno_web/02_timers.js");
const abortSignal = core.loadExtScript("ext:deno_web/03_abort_signal.js");
const base64 = core.loadExtScript("ext:deno_web/05_base64.js");
// deno_web's streams (a quarter of a megabyte of source) are not in the snapshot: they load the first time
// a step touches a stream global, a body's `.body`, a stream body, or `Blob.prototype.stream`, so the
// steps that never do (most: `await res.json()` reads the body without a stream) do not deserialise them.
// Every way to them goes through `streams()` (deno_web's own Blob.prototype.stream is wrapped below).
// They load after the step's code has run, so while they do, the step's accessors on the prototypes
// their assignments and reads go through are set aside, and those prototypes' own prototypes put back
// (`withPristinePrototypes`): otherwise a setter on `Object.prototype` would be handed deno_web's
// internal objects mid-load, and could patch the methods the fetch code takes here before it takes them.
let loadedStreams = null;
function streams() {
  if (loadedStreams === null) {
    const m = withPristinePrototypes(() => core.loadExtScript("ext:deno_web/06_streams.js"));
    const loaded = ObjectAssign({ __proto__: null }, m);
    loaded.ReadableStreamFrom = m.ReadableStream.from;
    loaded.ReaderRead = uncurryThis(m.ReadableStreamDefaultReader.prototype.read);
    loaded.ReaderCancel = uncurryThis(m.ReadableStreamDefaultReader.prototype.cancel);
    loadedStreams = loaded;
  }
  return loadedStreams;
}
/** Whether the streams were loaded: until then no stream exists, so nothing is one. */
const streamsLoaded = () => loadedStreams !== null;

// The accessors these prototypes have at snapshot time (before any step), and their prototypes.
const GUARDED = [Object.prototype, Array.prototype, Function.prototype].map((o) => {
  const accessors = new SafeMap();
  const keys = ReflectOwnKeys(o);
  for (let i = 0; i < keys.length; i++) {
    const d = ObjectGetOwnPropertyDescriptor(o, keys[i]);
    if (d.get !== undefined || d.set !== undefined) accessors.set(keys[i], d);
  }
  return { __proto__: null, o, proto: ObjectGetPrototypeOf(o), accessors };
});

/** Runs `load` with the step's accessors on `GUARDED` set aside and their prototypes as they were. */
function withPristinePrototypes(load) {
  // Null-prototype records, not arrays: an array's new index would be set through the step's hooks.
  const setAside = { __proto__: null };
  const swapped = { __proto__: null };
  let nSetAside = 0;
  let nSwapped = 0;
  try {
    for (let g = 0; g < GUARDED.length; g++) {
      const { o, proto, accessors } = GUARDED[g];
      const current = ObjectGetPrototypeOf(o);
      if (current !== proto) {
        swapped[nSwapped++] = { __proto__: null, o, current };
        ObjectSetPrototypeOf(o, proto);
      }
      const keys = ReflectOwnKeys(o);
      for (let i = 0; i < keys.length; i++) {
        const d = ObjectGetOwnPropertyDescriptor(o, keys[i]);
        if (d.get === undefined && d.set === undefined) continue;
        const original = accessors.get(keys[i]);
        if (original !== undefined && original.get === d.get && original.set === d.set) continue;
        if (!d.configurable) {
          throw new TypeError("streams cannot load: the step made an accessor of a built-in prototype non-configurable");
        }
        setAside[nSetAside++] = { __proto__: null, o, key: keys[i], d };
        ReflectDeleteProperty(o, keys[i]);
        if (original !== undefined) ObjectDefineProperty(o, keys[i], original);
      }
    }
    return load();
  } finally {
    for (let i = nSetAside - 1; i >= 0; i--) ObjectDefineProperty(setAside[i].o, setAside[i].key, setAside[i].d);
    for (let i = nSwapped - 1; i >= 0; i--) ObjectSetPrototypeOf(swapped[i].o, swapped[i].current);
  }
}
const encoding = core.loadExtScript("ext:deno_web/08_text_encoding.js");
const file = core.loadExtScript("ext:deno_web/09_file.js");

// deno_web's event code needs the global object for dispatch.
event.saveGlobalThisReference(globalThis);

// console: every call becomes one entry in the step's log (level, message, time) through an op.
// The Rust side caps the log's size. Nothing reaches the host's stdout.
const LEVELS = { debug: 0, log: 1, info: 2, warn: 3, error: 4 };
/** `console::MAX_MESSAGE_BYTES` plus one, in UTF-16 units: Rust still sees that the message was cut. */
const MAX_MESSAGE_UNITS = 16 * 1024 + 1;
function makeConsole() {
  const { op_codestep_log } = core.ops;
  const emit = (level) =>
    function (...args) {
      let message;
      try {
        message = consoleImpl.inspectArgs(args, { colors: false });
      } catch (e) {
        message = "[console: could not format arguments]";
      }
      // Rust keeps at most 16 KiB of a message; a longer one is cut here first, so that a huge string
      // is never copied out of the heap just to be cut.
      if (message.length > MAX_MESSAGE_UNITS) message = StringPrototypeSlice(message, 0, MAX_MESSAGE_UNITS);
      op_codestep_log(level, message);
    };
  const counts = { __proto__: null };
  const timersStart = { __proto__: null };
  const c = {
    debug: emit(LEVELS.debug),
    log: emit(LEVELS.log),
    info: emit(LEVELS.info),
    warn: emit(LEVELS.warn),
    error: emit(LEVELS.error),
    trace: emit(LEVELS.debug),
    dir: emit(LEVELS.log),
    table: emit(LEVELS.log),
    assert(cond, ...args) {
      if (!cond) c.error("Assertion failed:", ...args);
    },
    count(label = "default") {
      counts[label] = (counts[label] ?? 0) + 1;
      c.info(`${label}: ${counts[label]}`);
    },
    countReset(label = "default") {
      counts[label] = 0;
    },
    time(label = "default") {
      timersStart[label] = Date.now();
    },
    timeEnd(label = "default") {
      const start = timersStart[label];
      if (start !== undefined) c.info(`${label}: ${Date.now() - start}ms`);
      delete timersStart[label];
    },
    timeLog(label = "default", ...args) {
      const start = timersStart[label];
      if (start !== undefined) c.info(`${label}: ${Date.now() - start}ms`, ...args);
    },
    group() {},
    groupCollapsed() {},
    groupEnd() {},
  };
  return c;
}

// Web Crypto is deno_crypto's: `Crypto`, `SubtleCrypto` and `CryptoKey` are Rust objects, every
// algorithm runs in Rust. Its script is loaded the first time a step touches one of these globals: it
// is not in the snapshot (its objects cannot be made at snapshot time), and most steps never use it.
// deno_crypto brands Node KeyObjects with a symbol Deno's node layer owns; ours is private to here.
internals.kKeyObject ??= Symbol("kKeyObject");
let webCrypto;
function loadWebCrypto() {
  if (webCrypto === undefined) {
    const m = core.loadExtScript("ext:deno_crypto/00_crypto.js");
    // Reading `crypto` makes the singletons, which registers this isolate's brand symbols with
    // deno_crypto's Rust side. That side keeps them per thread, and a worker's thread has run other
    // steps' isolates before: without this, a key made first (`CryptoKey.fromCloneData`) would be
    // branded with symbols of a dead isolate, and the process would abort.
    m.crypto;
    // deno_crypto's internal constructors and Node interop (the registration above is done with them).
    delete m.Crypto.create;
    delete m.Crypto.registerSymbols;
    delete m.SubtleCrypto.create;
    delete m.CryptoKey.importSync;
    delete m.CryptoKey.exportNodeMaterial;
    // A key comes back from structuredClone through the checks of `keyFromCloneData` only; deno_crypto's
    // own entry is not left for steps either (its Rust side trusted the data's shape).
    const fromCloneData = m.CryptoKey.fromCloneData;
    delete m.CryptoKey.fromCloneData;
    core.getCloneableDeserializers().CryptoKey = (data) =>
      FunctionPrototypeCall(fromCloneData, m.CryptoKey, keyCloneData(data));
    boundWebCryptoWork(m.SubtleCrypto.prototype);
    webCrypto = m;
  }
  return webCrypto;
}
// What a real key of each algorithm holds, by key type: `secret`, `public` and `private` are the tagged
// `{ type, data }` forms, `raw` a bare Uint8Array, `seeded` `{ privateKey, seed }`. deno_crypto's Rust side
// assumes the form that goes with the algorithm (it reaches `unreachable!()` otherwise, and in a
// synchronous method such as `getPublicKey` that aborts the process); clone data is data any step can
// write (`Symbol.for("Deno.core.hostObject")`), so it is held to this table.
const SECRET_KEY = { __proto__: null, secret: ["secret"] };
const PAIR_KEY = { __proto__: null, public: ["public", "private"], private: ["private"] };
const OKP_KEY = { __proto__: null, public: ["raw"], private: ["raw"] };
const PQ_KEY = { __proto__: null, public: ["raw"], private: ["seeded"] };
const KEY_FORMS = { __proto__: null };
for (const name of ["AES-CTR", "AES-CBC", "AES-GCM", "AES-OCB", "AES-KW", "HMAC", "HKDF", "PBKDF2",
  "ChaCha20-Poly1305", "KMAC128", "KMAC256", "Argon2i", "Argon2d", "Argon2id"]) KEY_FORMS[name] = SECRET_KEY;
for (const name of ["RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP", "ECDSA", "ECDH"]) KEY_FORMS[name] = PAIR_KEY;
for (const name of ["Ed25519", "X25519", "X448"]) KEY_FORMS[name] = OKP_KEY;
for (const name of ["ML-KEM-512", "ML-KEM-768", "ML-KEM-1024", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87",
  "SLH-DSA-SHA2-128s", "SLH-DSA-SHA2-128f", "SLH-DSA-SHA2-192s", "SLH-DSA-SHA2-192f", "SLH-DSA-SHA2-256s",
  "SLH-DSA-SHA2-256f", "SLH-DSA-SHAKE-128s", "SLH-DSA-SHAKE-128f", "SLH-DSA-SHAKE-192s",
  "SLH-DSA-SHAKE-192f", "SLH-DSA-SHAKE-256s", "SLH-DSA-SHAKE-256f"]) KEY_FORMS[name] = PQ_KEY;

function cloneRefused() {
  return new domException.DOMException("CryptoKey clone data is not a key's", "DataCloneError");
}
/** A copy of a Uint8Array, or undefined. */
function bytesOf(v) {
  return ArrayBufferIsView(v) && TypedArrayPrototypeGetSymbolToStringTag(v) === "Uint8Array"
    ? TypedArrayPrototypeSlice(v)
    : undefined;
}
/** Clone data checked against `KEY_FORMS` and copied, each field read once, into objects without prototypes
 * (so that no getter of the step's runs while Rust reads them). */
function keyCloneData(data) {
  if (typeof data !== "object" || data === null) throw cloneRefused();
  const keyType = data.keyType;
  const algorithm = data.algorithm;
  const keyData = data.keyData;
  const usagesIn = data.usages;
  if (typeof algorithm !== "object" || algorithm === null || !ArrayIsArray(usagesIn)) throw cloneRefused();
  const name = algorithm.name;
  const forms = typeof name === "string" ? KEY_FORMS[name] : undefined;
  const allowed = forms !== undefined && typeof keyType === "string" ? forms[keyType] : undefined;
  if (allowed === undefined) throw cloneRefused();
  let form;
  let key;
  const raw = bytesOf(keyData);
  if (raw !== undefined) {
    form = "raw";
    key = raw;
  } else if (typeof keyData === "object" && keyData !== null) {
    const tag = keyData.type;
    if (tag !== undefined) {
      const bytes = bytesOf(keyData.data);
      if (bytes === undefined || (tag !== "secret" && tag !== "public" && tag !== "private")) throw cloneRefused();
      form = tag;
      key = { __proto__: null, type: tag, data: bytes };
    } else {
      const privateKey = bytesOf(keyData.privateKey);
      const seedIn = keyData.seed;
      const seed = bytesOf(seedIn);
      if (privateKey === undefined || (seedIn !== undefined && seed === undefined)) throw cloneRefused();
      form = "seeded";
      key = { __proto__: null, privateKey };
      if (seed !== undefined) key.seed = seed;
    }
  }
  if (form === undefined || !ArrayPrototypeIncludes(allowed, form)) throw cloneRefused();
  const alg = { __proto__: null, name };
  const length = algorithm.length;
  if (length !== undefined) {
    if (typeof length !== "number") throw cloneRefused();
    alg.length = length;
  }
  const namedCurve = algorithm.namedCurve;
  if (namedCurve !== undefined) {
    if (namedCurve !== "P-256" && namedCurve !== "P-384" && namedCurve !== "P-521") throw cloneRefused();
    alg.namedCurve = namedCurve;
  }
  const hashIn = algorithm.hash;
  if (hashIn !== undefined) {
    const hash = typeof hashIn === "string" ? hashIn : (typeof hashIn === "object" && hashIn !== null ? hashIn.name : undefined);
    if (typeof hash !== "string") throw cloneRefused();
    alg.hash = hash;
  }
  const modulusLength = algorithm.modulusLength;
  if (modulusLength !== undefined) {
    if (typeof modulusLength !== "number") throw cloneRefused();
    alg.modulusLength = modulusLength;
  }
  const exponentIn = algorithm.publicExponent;
  if (exponentIn !== undefined) {
    const exponent = bytesOf(exponentIn);
    if (exponent === undefined) throw cloneRefused();
    alg.publicExponent = exponent;
  }
  const usages = [];
  const count = usagesIn.length;
  if (count > 16) throw cloneRefused();
  for (let i = 0; i < count; i++) {
    const usage = usagesIn[i];
    if (typeof usage !== "string") throw cloneRefused();
    ArrayPrototypePush(usages, usage);
  }
  return {
    __proto__: null,
    type: "CryptoKey",
    keyType,
    extractable: data.extractable === true,
    usages,
    algorithm: alg,
    keyData: key,
  };
}

// Web Crypto's sizes and work factors are caller-chosen, and deno_crypto takes any: a PBKDF2 output of
// 512 MiB, Argon2 with 4 GiB of memory, an RSA key of 2^20 bits. Its work runs on a blocking thread and
// its memory is native, where in-process mode neither the step's CPU clock nor its memory budget sees
// them (a worker process is also bounded whole by the supervisor). So each is capped here, far above
// what real protocols use; past a cap the call rejects with a NotSupportedError naming it.
const WEB_CRYPTO_CAPS = {
  __proto__: null,
  length: 65536, // bits, of a derived or generated secret
  outputLength: 65536, // bits, of SHAKE/TurboSHAKE/KMAC output
  iterations: 10_000_000, // PBKDF2
  memory: 65536, // KiB, Argon2
  passes: 64, // Argon2
  parallelism: 16, // Argon2
  modulusLength: 8192, // bits, RSA
};
// Every member of a Web Crypto algorithm dictionary deno_crypto reads.
const ALGORITHM_MEMBERS = [
  "name", "hash", "salt", "iterations", "info", "length", "namedCurve", "public", "modulusLength",
  "publicExponent", "saltLength", "label", "iv", "counter", "additionalData", "tagLength", "memory",
  "passes", "parallelism", "nonce", "secretValue", "associatedData", "outputLength", "customization",
  "context", "version",
];

function overCap(what, value, cap) {
  return new domException.DOMException(
    `${what} is ${value}; codestep allows at most ${cap}`,
    "NotSupportedError",
  );
}

/** A checked copy of an algorithm dictionary: each member read once, so a getter cannot show one
 * value to the check and another to deno_crypto. */
function boundedAlgorithm(algorithm) {
  if (algorithm === null || typeof algorithm !== "object") return algorithm;
  const copy = { __proto__: null };
  const keys = ObjectKeys(algorithm);
  for (let i = 0; i < keys.length; i++) copy[keys[i]] = undefined;
  for (let i = 0; i < ALGORITHM_MEMBERS.length; i++) copy[ALGORITHM_MEMBERS[i]] = undefined;
  for (const key in copy) {
    const value = algorithm[key];
    if (value === undefined) {
      delete copy[key];
      continue;
    }
    const cap = WEB_CRYPTO_CAPS[key];
    if (cap !== undefined && value !== null) {
      const n = Number(value);
      if (NumberIsFinite(n) && n > cap) throw overCap(key, n, cap);
      copy[key] = n;
    } else {
      copy[key] = value;
    }
  }
  return copy;
}

/** Which arguments of each SubtleCrypto method are algorithm dictionaries. */
const ALGORITHM_ARGUMENTS = {
  __proto__: null,
  digest: [0],
  sign: [0],
  verify: [0],
  generateKey: [0],
  importKey: [2],
  deriveBits: [0],
  deriveKey: [0, 2],
  unwrapKey: [4],
};

function boundWebCryptoWork(proto) {
  for (const method in ALGORITHM_ARGUMENTS) {
    const original = proto[method];
    const positions = ALGORITHM_ARGUMENTS[method];
    const wrapper = {
      async [method](...args) {
        for (let i = 0; i < positions.length; i++) {
          args[positions[i]] = boundedAlgorithm(args[positions[i]]);
        }
        if (method === "deriveBits" && args[2] !== undefined && args[2] !== null) {
          const n = Number(args[2]);
          if (NumberIsFinite(n) && n > WEB_CRYPTO_CAPS.length) throw overCap("length", n, WEB_CRYPTO_CAPS.length);
          args[2] = n;
        }
        return await FunctionPrototypeApply(original, this, args);
      },
    }[method];
    ObjectDefineProperty(wrapper, "length", { value: original.length, configurable: true });
    ObjectDefineProperty(proto, method, { value: wrapper, writable: true, enumerable: true, configurable: true });
  }
}

// For `node:crypto`, which must load it the same way.
internals.codestepWebCrypto = loadWebCrypto;
// Rust ops (deno_crypto's above all) name a DOMException by its class: "DOMException" + its name.
for (const name of [
  "DataError",
  "InvalidAccessError",
  "NotSupportedError",
  "OperationError",
  "QuotaExceededError",
  "SyntaxError",
  "TypeMismatchError",
]) {
  core.registerErrorBuilder(`DOMException${name}`, (message) => new domException.DOMException(message, name));
}

function define(name, value) {
  ObjectDefineProperty(globalThis, name, { value, writable: true, enumerable: false, configurable: true });
}

define("URL", url.URL);
define("URLSearchParams", url.URLSearchParams);
define("DOMException", domException.DOMException);
define("Event", event.Event);
define("EventTarget", event.EventTarget);
define("CustomEvent", event.CustomEvent);
define("ErrorEvent", event.ErrorEvent);
define("AbortController", abortSignal.AbortController);
define("AbortSignal", abortSignal.AbortSignal);
define("TextEncoder", encoding.TextEncoder);
define("TextDecoder", encoding.TextDecoder);
define("TextEncoderStream", encoding.TextEncoderStream);
define("TextDecoderStream", encoding.TextDecoderStream);
define("atob", base64.atob);
define("btoa", base64.btoa);
define("setTimeout", timers.setTimeout);
define("clearTimeout", timers.clearTimeout);
define("setInterval", timers.setInterval);
define("clearInterval", timers.clearInterval);
define("structuredClone", structuredClone);
define("Blob", file.Blob);
{
  const desc = ObjectGetOwnPropertyDescriptor(file.BlobPrototype, "stream");
  const blobStream = desc.value;
  desc.value = {
    stream() {
      streams();
      return FunctionPrototypeCall(blobStream, this);
    },
  }.stream;
  ObjectDefineProperty(file.BlobPrototype, "stream", desc);
}
define("File", file.File);
const streamGlobals = { __proto__: null };
for (const name of [
  "ReadableStream",
  "ReadableStreamDefaultReader",
  "ReadableStreamBYOBReader",
  "WritableStream",
  "WritableStreamDefaultWriter",
  "TransformStream",
  "ByteLengthQueuingStrategy",
  "CountQueuingStrategy",
]) {
  streamGlobals[name] = core.propNonEnumerableLazyLoaded((m) => m[name], streams);
}
core.defineGlobalProperties(globalThis, streamGlobals);
core.defineGlobalProperties(globalThis, {
  crypto: core.propNonEnumerableLazyLoaded((m) => m.crypto, loadWebCrypto),
  Crypto: core.propNonEnumerableLazyLoaded((m) => m.Crypto, loadWebCrypto),
  CryptoKey: core.propNonEnumerableLazyLoaded((m) => m.CryptoKey, loadWebCrypto),
  SubtleCrypto: core.propNonEnumerableLazyLoaded((m) => m.SubtleCrypto, loadWebCrypto),
});
define("console", makeConsole());
// Math.random draws from a generator seeded from the OS for every step (`ops.rs`): V8's own is seeded
// once per process, and every step process a worker forks starts from the same isolate.
{
  const random = FunctionPrototypeBind(core.ops.op_codestep_math_random, undefined);
  ObjectDefineProperty(random, "name", { value: "random" });
  ObjectDefineProperty(Math, "random", { value: random, writable: true, enumerable: false, configurable: true });
}

export { webidl, url, domException, event, abortSignal, encoding, file, consoleImpl, loadWebCrypto, streams, streamsLoaded };
