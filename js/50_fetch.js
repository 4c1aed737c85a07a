// codestep fetch polyfill: `fetch()` (WHATWG Fetch section 5.6) on top of the Rust
// egress ops. The ops talk to the step's gateway, which holds the connectors (in
// process mode, in another process); JS only ever sees what the gateway sends back.
//
//   op_codestep_fetch(args, body) -> Promise<head>
//     args = { method, url, headers: [[name, value]], redirect, requestId, stream }
//     body = Uint8Array | null: the whole body, when it is not streamed
//     head = { status, statusText, headers: [[name, value]], url, redirected }
//     rejects with a TypeError for network errors, policy blocks and limits.
//   op_codestep_fetch_body_ready(id) -> Promise<bool>: the request wants its next
//     body chunk (false: it failed, stop). Nothing is read from a body stream before
//     the request passed the policy check.
//   op_codestep_fetch_body_write(id, chunk), op_codestep_fetch_body_end(id)
//   op_codestep_fetch_next(id) -> Promise<size>: the next response chunk's size, 0 at
//     the end; op_codestep_fetch_take(id, buffer) copies it into a buffer JS made,
//     so response bytes count against the step's memory as they arrive.
//   op_codestep_fetch_abort(id) cancels a request (its record is still kept).
//
// Deliberate differences from the browser spec (they match Deno / Node):
// - No base URL: relative URLs reject with a TypeError.
// - No CORS, no forbidden-header filtering in JS (the Rust egress strips or
//   refuses the headers it must), no cookie jar (Set-Cookie never reaches JS).
// - redirect: "manual" resolves with the real 3xx response (type "basic",
//   Location readable) instead of an opaque-redirect filtered response.
// - Async iterables are accepted as bodies (like a ReadableStream, they need
//   `duplex: "half"`, as in Node). Such bodies stream out, and a 307/308
//   redirect of one fails, since a stream cannot be sent twice.
// - An `Accept: */*` header is added when the request has none (Fetch 4.1).

import { core, primordials } from "ext:core/mod.js";
import { streams } from "ext:codestep/00_globals.js";
import {
  Headers,
  headerListFromHeaders,
  isValidHeaderName,
  isValidHeaderValue,
  listAppend,
  listContains,
  listFromOpPairs,
  normalizeHeaderValue,
} from "ext:codestep/10_headers.js";
import {
  _body,
  _headers,
  FormData,
  InnerBody,
  STRING_BODY_TYPE,
  stringBodyBytes,
} from "ext:codestep/20_body.js";
import {
  _method,
  _redirect,
  _signal,
  _url,
  isForbiddenMethod,
  normalizeMethod,
  Request,
  urlWithoutFragment,
} from "ext:codestep/30_request.js";
import { isNullBodyStatus, networkResponse, Response } from "ext:codestep/40_response.js";

const {
  ArrayIsArray,
  ArrayPrototypePush,
  NumberParseInt,
  ObjectGetPrototypeOf,
  ObjectHasOwn,
  ObjectPrototype,
  ReflectGetOwnPropertyDescriptor,
  ReflectOwnKeys,
  SymbolIterator,
  StringFromCharCode,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeReplace,
  StringPrototypeSlice,
  StringPrototypeStartsWith,
  ObjectPrototypeIsPrototypeOf,
  Promise,
  PromiseResolve,
  PromisePrototypeThen,
  TypeError,
  TypeErrorPrototype,
  Uint8Array,
} = primordials;

const webidl = core.loadExtScript("ext:deno_webidl/00_webidl.js");
const fileImpl = core.loadExtScript("ext:deno_web/09_file.js");
const base64Impl = core.loadExtScript("ext:deno_web/05_base64.js");

// `data:` and `blob:` URLs are fetched here, locally, as the Fetch standard's scheme fetch says; they
// never reach the network op.
const ASCII_WS = /^[\t\n\f\r ]+|[\t\n\f\r ]+$/g;

function percentDecode(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c === 37 && i + 2 < s.length) {
      const h = StringPrototypeSlice(s, i + 1, i + 3);
      if (/^[0-9a-fA-F]{2}$/.test(h)) {
        ArrayPrototypePush(out, NumberParseInt(h, 16));
        i += 2;
        continue;
      }
    }
    // The URL parser has already percent-encoded everything outside ASCII.
    ArrayPrototypePush(out, c & 0xff);
  }
  return new Uint8Array(out);
}

function dataUrlResponse(url) {
  let input = StringPrototypeSlice(url, 5);
  const hash = StringPrototypeIndexOf(input, "#");
  if (hash >= 0) input = StringPrototypeSlice(input, 0, hash);
  const comma = StringPrototypeIndexOf(input, ",");
  if (comma < 0) throw new TypeError("Failed to fetch: the data: URL has no comma");
  let mimeType = StringPrototypeReplace(StringPrototypeSlice(input, 0, comma), ASCII_WS, "");
  let body = percentDecode(StringPrototypeSlice(input, comma + 1));
  const b64 = /;[\t\n\f\r ]*base64[\t\n\f\r ]*$/i;
  if (b64.test(mimeType)) {
    let binary = "";
    for (let i = 0; i < body.length; i++) binary += StringFromCharCode(body[i]);
    let decoded;
    try {
      decoded = base64Impl.atob(binary);
    } catch {
      throw new TypeError("Failed to fetch: the data: URL's base64 is invalid");
    }
    body = new Uint8Array(decoded.length);
    for (let i = 0; i < decoded.length; i++) body[i] = StringPrototypeCharCodeAt(decoded, i);
    mimeType = StringPrototypeReplace(StringPrototypeReplace(mimeType, b64, ""), ASCII_WS, "");
  }
  if (mimeType === "" || mimeType[0] === ";") mimeType = "text/plain" + mimeType;
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+/.test(mimeType)) {
    mimeType = "text/plain;charset=US-ASCII";
  }
  // Null-prototype objects: converting them as a ResponseInit / HeadersInit runs no user code.
  return new Response(body, {
    __proto__: null,
    status: 200,
    statusText: "OK",
    headers: { __proto__: null, "content-type": mimeType },
  });
}

function blobUrlResponse(url, method) {
  if (method !== "GET") throw new TypeError("Failed to fetch: a blob: URL can only be fetched with GET");
  const blob = fileImpl.blobFromObjectUrl(url);
  if (blob === null) throw new TypeError("Failed to fetch: the blob: URL is not (or no longer) valid");
  const headers = { __proto__: null, "content-length": `${blob.size}` };
  if (blob.type !== "") headers["content-type"] = blob.type;
  return new Response(blob, { __proto__: null, status: 200, statusText: "OK", headers });
}

let userAgent;
const { add: abortAdd, remove: abortRemove } = core.loadExtScript("ext:deno_web/03_abort_signal.js");

/** Most bytes per body chunk sent to Rust (`protocol::MAX_BODY_CHUNK`). */
const MAX_BODY_CHUNK = 256 * 1024;

/**
 * Streams a request body to the gateway, one chunk each time it asks for one. `onError` fails the
 * fetch when the stream errors or yields something that is not bytes.
 */
async function pumpBody(requestId, stream, onError) {
  const { op_codestep_fetch_body_ready, op_codestep_fetch_body_write, op_codestep_fetch_body_end } = core.ops;
  let reader;
  try {
    reader = streams().acquireReadableStreamDefaultReader(stream);
    for (;;) {
      if (!(await op_codestep_fetch_body_ready(requestId))) {
        PromisePrototypeThen(streams().ReaderCancel(reader), undefined, () => {});
        return;
      }
      const { value, done } = await streams().ReaderRead(reader);
      if (done) {
        op_codestep_fetch_body_end(requestId);
        return;
      }
      if (!isUint8Array(value)) {
        throw new TypeError("fetch: a request body stream must yield Uint8Array chunks");
      }
      const len = primordials.TypedArrayPrototypeGetByteLength(value);
      for (let off = 0; off < len; off += MAX_BODY_CHUNK) {
        if (off > 0 && !(await op_codestep_fetch_body_ready(requestId))) return;
        const end = off + MAX_BODY_CHUNK < len ? off + MAX_BODY_CHUNK : len;
        op_codestep_fetch_body_write(requestId, primordials.TypedArrayPrototypeSubarray(value, off, end));
      }
    }
  } catch (e) {
    onError(e);
  }
}

/**
 * The response body as a byte stream that pulls chunks from the gateway as JS reads. `state.controller`
 * is set so an abort after the response arrived can error the body.
 */
function responseStream(requestId, state) {
  const { op_codestep_fetch_next, op_codestep_fetch_take, op_codestep_fetch_abort } = core.ops;
  return streams().createReadableByteStream(
    (controller) => {
      state.controller = controller;
      // Made after an abort (from a source that was not read yet): errored with the abort's reason.
      if (state.aborted) streams().readableByteStreamControllerError(controller, state.reason);
    },
    async (controller) => {
      const size = await op_codestep_fetch_next(requestId);
      if (size === 0) {
        state.done = true;
        streams().readableByteStreamControllerClose(controller);
        return;
      }
      const chunk = new Uint8Array(size);
      op_codestep_fetch_take(requestId, chunk);
      streams().readableByteStreamControllerEnqueue(controller, chunk);
    },
    () => {
      state.done = true;
      op_codestep_fetch_abort(requestId);
      return PromiseResolve(undefined);
    },
  );
}

/**
 * The response body as `InnerBody`'s source: read whole (`text()`, `json()`, ...), it is pulled chunk by
 * chunk from the gateway without a stream; `toStream()` makes the stream when one is asked for. After an
 * abort, `next()` rejects with the abort's reason, as the stream would have errored with it.
 */
function responseSource(requestId, state) {
  const { op_codestep_fetch_next, op_codestep_fetch_take, op_codestep_fetch_abort } = core.ops;
  return {
    __proto__: null,
    async next() {
      if (state.aborted) throw state.reason;
      let size;
      try {
        size = await op_codestep_fetch_next(requestId);
      } catch (e) {
        if (state.aborted) throw state.reason;
        throw e;
      }
      if (state.aborted) throw state.reason;
      if (size === 0) {
        state.done = true;
        return null;
      }
      const chunk = new Uint8Array(size);
      op_codestep_fetch_take(requestId, chunk);
      return chunk;
    },
    cancel() {
      state.done = true;
      op_codestep_fetch_abort(requestId);
    },
    toStream: () => responseStream(requestId, state),
  };
}

// ---- The common call, without a Request ----------------------------------------------------------
//
// `fetch("https://...", { method, headers: { ... }, body: "..." })` is most of what steps do. Made
// as the standard says, it builds a URL, an AbortSignal, a Headers and a Request, all to be thrown
// away; in a fresh isolate each of those runs its code for the first time, which made up most of a
// fetch's cost in JS (about 0.3 ms of 0.5 in a step process). When converting the arguments can run
// no user code and cannot fail, the result is known without them, and this path builds only what
// goes to Rust: the same method, URL, header list and body bytes the Request would have held.
// Anything else, or anything invalid, takes the full path, which converts and reports exactly as
// WebIDL says.

/** RequestInit's members: the dictionary conversion reads each, also where the object inherits it. */
const REQUEST_INIT_KEYS = [
  "body",
  "cache",
  "credentials",
  "duplex",
  "headers",
  "integrity",
  "keepalive",
  "method",
  "mode",
  "priority",
  "redirect",
  "referrer",
  "referrerPolicy",
  "signal",
  "window",
];

/**
 * The own keys of `v` when reading them runs no user code: an ordinary object (not a Proxy, not an
 * array) inheriting from Object.prototype or from nothing, whose own properties are enumerable data
 * properties with string keys. Otherwise null.
 */
function plainKeys(v) {
  if (typeof v !== "object" || v === null || core.isProxy(v) || ArrayIsArray(v)) return null;
  const proto = ObjectGetPrototypeOf(v);
  if (proto !== ObjectPrototype && proto !== null) return null;
  const keys = ReflectOwnKeys(v);
  for (let i = 0; i < keys.length; i++) {
    if (typeof keys[i] !== "string") return null;
    const d = ReflectGetOwnPropertyDescriptor(v, keys[i]);
    if (d.enumerable !== true || !ObjectHasOwn(d, "value")) return null;
  }
  return keys;
}

/** True when Object.prototype holds one of `keys` (a member it holds would be read as inherited). */
function prototypeHolds(keys) {
  for (let i = 0; i < keys.length; i++) {
    if (ObjectHasOwn(ObjectPrototype, keys[i])) return true;
  }
  return false;
}

/**
 * `{ method, url, list, bytes }` for fetch(input, init) when `new Request(input, init)` would succeed
 * and reading the arguments runs no user code; null when the full path must run. `init` may hold
 * only `method` (a string), `headers` (a record of strings) and `body` (a string, null or undefined);
 * the URL is checked by Rust's parser.
 */
function simpleCall(input, init) {
  if (typeof input !== "string") return null;
  let method = "GET";
  const list = [];
  let text = null;
  if (init !== undefined) {
    const keys = plainKeys(init);
    if (keys === null) return null;
    if (ObjectGetPrototypeOf(init) === ObjectPrototype && prototypeHolds(REQUEST_INIT_KEYS)) return null;
    let headers;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (key === "method") {
        const m = init.method;
        if (typeof m !== "string" || !isValidHeaderName(m) || isForbiddenMethod(m)) return null;
        method = normalizeMethod(m);
      } else if (key === "headers") {
        headers = init.headers;
      } else if (key === "body") {
        const b = init.body;
        if (typeof b === "string") text = b;
        else if (b !== undefined && b !== null) return null;
      } else {
        return null;
      }
    }
    if (text !== null && (method === "GET" || method === "HEAD")) return null;
    if (headers !== undefined) {
      const names = plainKeys(headers);
      if (names === null) return null;
      // A record, unless something makes it iterable: then it is a sequence.
      if (ObjectGetPrototypeOf(headers) === ObjectPrototype && ObjectHasOwn(ObjectPrototype, SymbolIterator)) {
        return null;
      }
      for (let i = 0; i < names.length; i++) {
        const name = names[i];
        const raw = headers[name];
        if (typeof raw !== "string" || !isValidHeaderName(name)) return null;
        const value = normalizeHeaderValue(raw);
        if (!isValidHeaderValue(value)) return null;
        ArrayPrototypePush(list, [name, value]);
      }
    }
  }
  const url = core.ops.op_codestep_fetch_url(input);
  if (url === null) return null;
  let bytes = null;
  if (text !== null) {
    // As `extractBody` does for a string, and the Request's "Content-Type" when none was given.
    bytes = stringBodyBytes(text);
    if (!listContains(list, "content-type")) listAppend(list, "Content-Type", STRING_BODY_TYPE);
  }
  return { __proto__: null, method, url, list, bytes };
}

let nextRequestId = 1;

/** Errors reaching the caller are always TypeErrors of this realm (except abort reasons). */
function toTypeError(e) {
  if (ObjectPrototypeIsPrototypeOf(TypeErrorPrototype, e)) return e;
  let message = "fetch failed";
  try {
    if (e !== null && typeof e === "object" && typeof e.message === "string" && e.message !== "") {
      message = e.message;
    } else if (typeof e === "string" && e !== "") {
      message = e;
    }
  } catch {
    // keep the generic message
  }
  return new TypeError(message, { cause: e });
}

function isUint8Array(v) {
  return core.isTypedArray(v) && primordials.TypedArrayPrototypeGetSymbolToStringTag(v) === "Uint8Array";
}

/**
 * @param {RequestInfo} input
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
function fetch(input, init = undefined) {
  let resolvePromise;
  let rejectPromise;
  const promise = new Promise((resolve, reject) => {
    resolvePromise = resolve;
    rejectPromise = reject;
  });

  // What goes to Rust: from the common call directly, otherwise from a Request. A simple call has
  // no signal (a Request's own signal could never abort), its body (if any) as bytes already, and
  // follows redirects.
  let method;
  let url;
  let list;
  let redirect = "follow";
  let signal = null;
  let body = null;
  let simpleBytes = null;
  let simple = null;
  try {
    // It throws only where the full path would throw the same (encoding a body too large for V8).
    if (arguments.length > 0) simple = simpleCall(input, init);
  } catch (e) {
    rejectPromise(e);
    return promise;
  }
  if (simple !== null) {
    method = simple.method;
    url = simple.url;
    list = simple.list;
    simpleBytes = simple.bytes;
  } else {
    let request;
    try {
      webidl.requiredArguments(arguments.length, 1, "Failed to execute 'fetch'");
      request = new Request(input, init);
    } catch (e) {
      rejectPromise(e);
      return promise;
    }

    signal = request[_signal];
    body = request[_body];
    if (signal.aborted) {
      if (body !== null) body.cancel(signal.reason);
      rejectPromise(signal.reason);
      return promise;
    }

    const href = request[_url];
    if (StringPrototypeStartsWith(href, "data:") || StringPrototypeStartsWith(href, "blob:")) {
      try {
        resolvePromise(
          StringPrototypeStartsWith(href, "data:") ? dataUrlResponse(href) : blobUrlResponse(href, request[_method]),
        );
      } catch (e) {
        rejectPromise(e);
      }
      return promise;
    }
    method = request[_method];
    url = urlWithoutFragment(href);
    list = headerListFromHeaders(request[_headers]);
    redirect = request[_redirect];
  }

  const { op_codestep_fetch, op_codestep_fetch_abort } = core.ops;
  const requestId = nextRequestId++;
  let settled = false;
  let opStarted = false;

  const onAbort = () => {
    if (settled) return;
    settled = true;
    if (opStarted) {
      try {
        op_codestep_fetch_abort(requestId);
      } catch {
        // the request may already be finished on the Rust side
      }
    }
    if (body !== null) {
      try {
        body.cancel(signal.reason);
      } catch {
        // nothing more to stop
      }
    }
    rejectPromise(signal.reason);
  };
  if (signal !== null) signal[abortAdd](onAbort);

  const fail = (e) => {
    if (settled) return;
    settled = true;
    if (signal !== null) signal[abortRemove](onAbort);
    if (opStarted) {
      try {
        op_codestep_fetch_abort(requestId);
      } catch {
        // the request may already be finished on the Rust side
      }
    }
    rejectPromise(toTypeError(e));
  };

  const run = async () => {
    let bodyBytes = simpleBytes;
    let bodyStream = null;
    if (body !== null) {
      if (body.isUnusable()) {
        throw new TypeError("Failed to execute 'fetch': request body is unusable (already read or locked)");
      }
      if (body.stream !== null && body.length === null) {
        // A stream of unknown length (a ReadableStream or an async iterable): it streams out.
        bodyStream = body.stream;
      } else {
        bodyBytes = await body.consume();
        if (!isUint8Array(bodyBytes)) bodyBytes = new Uint8Array(0);
      }
    }
    if (settled) return;

    const headers = [];
    for (let i = 0; i < list.length; i++) {
      ArrayPrototypePush(headers, [list[i][0], list[i][1]]);
    }
    // Fetch section 4.1 step 12: a request without Accept gets `Accept: */*`.
    if (!listContains(list, "accept")) ArrayPrototypePush(headers, ["accept", "*/*"]);
    // A step that sets no User-Agent sends codestep's.
    if (!listContains(list, "user-agent")) {
      userAgent ??= core.ops.op_codestep_user_agent();
      ArrayPrototypePush(headers, ["user-agent", userAgent]);
    }

    const args = {
      __proto__: null,
      method,
      url,
      headers,
      redirect,
      requestId,
      stream: bodyStream !== null,
    };
    opStarted = true;
    const headPromise = op_codestep_fetch(args, bodyBytes);
    if (bodyStream !== null) pumpBody(requestId, bodyStream, fail);
    const reply = await headPromise;
    if (settled) return;

    const status = reply.status;
    let responseBody = null;
    const bodyState = { controller: null, done: false, aborted: false, reason: undefined };
    if (!isNullBodyStatus(status) && method !== "HEAD") {
      responseBody = InnerBody.fromSource(responseSource(requestId, bodyState));
    } else {
      // Nothing to read: let the gateway close the request now.
      bodyState.done = true;
      op_codestep_fetch_abort(requestId);
    }
    const response = networkResponse({
      status,
      statusText: typeof reply.statusText === "string" ? reply.statusText : "",
      headerList: listFromOpPairs(reply.headers),
      url: typeof reply.url === "string" ? reply.url : url,
      redirected: reply.redirected === true,
      body: responseBody,
    });
    settled = true;
    if (signal !== null) signal[abortRemove](onAbort);
    if (signal !== null && !bodyState.done) {
      // Fetch, "abort the fetch() call": an abort after the response arrived errors its body.
      const onAbortBody = () => {
        signal[abortRemove](onAbortBody);
        if (bodyState.done) return;
        bodyState.done = true;
        bodyState.aborted = true;
        bodyState.reason = signal.reason;
        op_codestep_fetch_abort(requestId);
        if (bodyState.controller !== null) {
          try {
            streams().readableByteStreamControllerError(bodyState.controller, signal.reason);
          } catch {
            // the stream is already closed or errored
          }
        }
      };
      signal[abortAdd](onAbortBody);
    }
    resolvePromise(response);
  };

  PromisePrototypeThen(run(), undefined, fail);
  return promise;
}

export { fetch, FormData, Headers, Request, Response };
