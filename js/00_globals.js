// Installs the web platform globals a step may rely on, taken from deno_web, plus our own console and
// Web Crypto (deno_crypto, on first use). Runs once, at snapshot time: nothing here may call an op at module top level.

import { core, internals, primordials } from "ext:core/mod.js";

const {
  ObjectDefineProperty,
  StringPrototypeSlice,
} = primordials;

const webidl = core.loadExtScript("ext:deno_webidl/00_webidl.js");
const url = core.loadExtScript("ext:deno_web/00_url.js");
const domException = core.loadExtScript("ext:deno_web/01_dom_exception.js");
const consoleImpl = core.loadExtScript("ext:deno_web/01_console.js");
const event = core.loadExtScript("ext:deno_web/02_event.js");
const structuredCloneImpl = core.loadExtScript("ext:deno_web/02_structured_clone.js");
const timers = core.loadExtScript("ext:deno_web/02_timers.js");
const abortSignal = core.loadExtScript("ext:deno_web/03_abort_signal.js");
const base64 = core.loadExtScript("ext:deno_web/05_base64.js");
const streams = core.loadExtScript("ext:deno_web/06_streams.js");
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
    webCrypto = m;
  }
  return webCrypto;
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
define("structuredClone", structuredCloneImpl.structuredClone);
define("Blob", file.Blob);
define("File", file.File);
define("ReadableStream", streams.ReadableStream);
define("ReadableStreamDefaultReader", streams.ReadableStreamDefaultReader);
define("ReadableStreamBYOBReader", streams.ReadableStreamBYOBReader);
define("WritableStream", streams.WritableStream);
define("WritableStreamDefaultWriter", streams.WritableStreamDefaultWriter);
define("TransformStream", streams.TransformStream);
define("ByteLengthQueuingStrategy", streams.ByteLengthQueuingStrategy);
define("CountQueuingStrategy", streams.CountQueuingStrategy);
core.defineGlobalProperties(globalThis, {
  crypto: core.propNonEnumerableLazyLoaded((m) => m.crypto, loadWebCrypto),
  Crypto: core.propNonEnumerableLazyLoaded((m) => m.Crypto, loadWebCrypto),
  CryptoKey: core.propNonEnumerableLazyLoaded((m) => m.CryptoKey, loadWebCrypto),
  SubtleCrypto: core.propNonEnumerableLazyLoaded((m) => m.SubtleCrypto, loadWebCrypto),
});
define("console", makeConsole());

export { webidl, url, domException, event, abortSignal, streams, encoding, file, consoleImpl, loadWebCrypto };
