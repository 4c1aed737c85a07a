// codestep fetch polyfill: `fetch()` (WHATWG Fetch section 5.6) on top of the Rust
// egress ops.
//
//   op_codestep_fetch(args, body) -> Promise<reply>
//     args  = { method, url, headers: [[name, value]], redirect, requestId }
//     body  = Uint8Array | null (the whole request body)
//     reply = { status, statusText, headers: [[name, value]], url, redirected, body: Uint8Array }
//     rejects with a TypeError for network errors, policy blocks and limits.
//   op_codestep_fetch_abort(requestId) cancels an in-flight request.
//
// Request bodies are gathered into bytes before the op is called; response
// bodies arrive whole and are exposed as a byte ReadableStream on demand.
//
// Deliberate differences from the browser spec (they match Deno / Node):
// - No base URL: relative URLs reject with a TypeError.
// - No CORS, no forbidden-header filtering in JS (the Rust egress strips or
//   refuses the headers it must), no cookie jar (Set-Cookie never reaches JS).
// - redirect: "manual" resolves with the real 3xx response (type "basic",
//   Location readable) instead of an opaque-redirect filtered response.
// - A ReadableStream request body does not need `duplex: "half"`; async
//   iterables are accepted as bodies. Streams are fully read before sending.
// - Aborting after the response resolved has no effect: its body is already
//   fully received.
// - An `Accept: */*` header is added when the request has none (Fetch 4.1).

import { core, primordials } from "ext:core/mod.js";
import {
  Headers,
  headerListFromHeaders,
  listContains,
  listFromOpPairs,
} from "ext:codestep/10_headers.js";
import { _body, _headers, FormData, InnerBody } from "ext:codestep/20_body.js";
import {
  _method,
  _redirect,
  _signal,
  _url,
  Request,
  urlWithoutFragment,
} from "ext:codestep/30_request.js";
import { isNullBodyStatus, networkResponse, Response } from "ext:codestep/40_response.js";

const {
  ArrayPrototypePush,
  ObjectPrototypeIsPrototypeOf,
  Promise,
  PromisePrototypeThen,
  TypeError,
  TypeErrorPrototype,
  Uint8Array,
} = primordials;

const webidl = core.loadExtScript("ext:deno_webidl/00_webidl.js");
const { add: abortAdd, remove: abortRemove } = core.loadExtScript("ext:deno_web/03_abort_signal.js");

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

  let request;
  try {
    webidl.requiredArguments(arguments.length, 1, "Failed to execute 'fetch'");
    request = new Request(input, init);
  } catch (e) {
    rejectPromise(e);
    return promise;
  }

  const signal = request[_signal];
  const body = request[_body];
  if (signal.aborted) {
    if (body !== null) body.cancel(signal.reason);
    rejectPromise(signal.reason);
    return promise;
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
  signal[abortAdd](onAbort);

  const fail = (e) => {
    if (settled) return;
    settled = true;
    signal[abortRemove](onAbort);
    rejectPromise(toTypeError(e));
  };

  const run = async () => {
    let bodyBytes = null;
    if (body !== null) {
      if (body.isUnusable()) {
        throw new TypeError("Failed to execute 'fetch': request body is unusable (already read or locked)");
      }
      bodyBytes = await body.consume();
      if (!isUint8Array(bodyBytes)) bodyBytes = new Uint8Array(0);
    }
    if (settled) return;

    const list = headerListFromHeaders(request[_headers]);
    const headers = [];
    for (let i = 0; i < list.length; i++) {
      ArrayPrototypePush(headers, [list[i][0], list[i][1]]);
    }
    // Fetch section 4.1 step 12: a request without Accept gets `Accept: */*`.
    if (!listContains(list, "accept")) ArrayPrototypePush(headers, ["accept", "*/*"]);

    const method = request[_method];
    const args = {
      __proto__: null,
      method,
      url: urlWithoutFragment(request[_url]),
      headers,
      redirect: request[_redirect],
      requestId,
    };
    opStarted = true;
    const reply = await op_codestep_fetch(args, bodyBytes);
    if (settled) return;

    const status = reply.status;
    let responseBody = null;
    if (!isNullBodyStatus(status) && method !== "HEAD") {
      const bytes = reply.body;
      // The op's buffer was made by Rust, outside the step's ArrayBuffer budget: copy it into one the
      // budget counts (and refuses past the memory limit), and let the original go.
      responseBody = InnerBody.fromBytes(isUint8Array(bytes) ? new Uint8Array(bytes) : new Uint8Array(0));
    }
    const response = networkResponse({
      status,
      statusText: typeof reply.statusText === "string" ? reply.statusText : "",
      headerList: listFromOpPairs(reply.headers),
      url: typeof reply.url === "string" ? reply.url : request[_url],
      redirected: reply.redirected === true,
      body: responseBody,
    });
    settled = true;
    signal[abortRemove](onAbort);
    resolvePromise(response);
  };

  PromisePrototypeThen(run(), undefined, fail);
  return promise;
}

export { fetch, FormData, Headers, Request, Response };
