// codestep fetch polyfill: the `Request` interface (WHATWG Fetch section 5.4).
//
// Server-side semantics, as in Deno and Node: there is no base URL (relative
// URLs throw, a relative `referrer` too), no origin (a referrer URL is kept as
// given, never replaced by "client" for being cross-origin), no CORS, no
// forbidden-header filtering; `cache`, `credentials`, `mode`, `keepalive`,
// `integrity`, `referrer*`, `priority` and `duplex` are validated as the
// standard says and reported back, but have no effect on the wire. A stream
// body (a ReadableStream, or an async iterable) needs `duplex: "half"`, as the
// standard and Node require (Deno does not check).

import { core, primordials } from "ext:core/mod.js";
import {
  byteLowerCase,
  cloneList,
  convertHeadersInit,
  fillHeaders,
  guardFromHeaders,
  headerListFromHeaders,
  headersFromList,
  isValidHeaderName,
  listAppend,
  listContains,
  replaceHeaderList,
} from "ext:codestep/10_headers.js";
import {
  _body,
  _headers,
  convertBodyInit,
  extractBody,
  isStreamBodyInit,
  mixinBody,
} from "ext:codestep/20_body.js";

const {
  ObjectGetOwnPropertyDescriptor,
  ObjectKeys,
  ObjectPrototypeIsPrototypeOf,
  SafeArrayIterator,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
  StringPrototypeToUpperCase,
  Symbol,
  SymbolFor,
  TypeError,
  uncurryThis,
} = primordials;

const webidl = core.loadExtScript("ext:deno_webidl/00_webidl.js");
const { URL, URLPrototype } = core.loadExtScript("ext:deno_web/00_url.js");
const { AbortSignalPrototype, createDependentAbortSignal, newSignal } = core.loadExtScript(
  "ext:deno_web/03_abort_signal.js",
);

const URLPrototypeGetHref = uncurryThis(ObjectGetOwnPropertyDescriptor(URLPrototype, "href").get);
const URLPrototypeGetUsername = uncurryThis(ObjectGetOwnPropertyDescriptor(URLPrototype, "username").get);
const URLPrototypeGetPassword = uncurryThis(ObjectGetOwnPropertyDescriptor(URLPrototype, "password").get);
const URLPrototypeGetProtocol = uncurryThis(ObjectGetOwnPropertyDescriptor(URLPrototype, "protocol").get);
const URLPrototypeGetPathname = uncurryThis(ObjectGetOwnPropertyDescriptor(URLPrototype, "pathname").get);

const _method = Symbol("[[method]]");
const _url = Symbol("[[url]]");
const _redirect = Symbol("[[redirect]]");
const _signal = Symbol("[[signal]]");
const _options = Symbol("[[options]]");

/** Parse an absolute URL (no base: server-side has no document). Returns the serialisation. */
function parseAbsoluteUrl(input, what) {
  let parsed;
  try {
    parsed = new URL(input);
  } catch {
    throw new TypeError(`${what}: Invalid URL: '${input}' (relative URLs are not supported; give an absolute URL)`);
  }
  return parsed;
}

function isForbiddenMethod(m) {
  const u = byteLowerCase(m);
  return u === "connect" || u === "trace" || u === "track";
}

function normalizeMethod(m) {
  const u = byteLowerCase(m);
  switch (u) {
    case "delete":
    case "get":
    case "head":
    case "options":
    case "post":
    case "put":
      return StringPrototypeToUpperCase(u);
    default:
      return m;
  }
}

const anyConverter = (v) => v;
const headersInitConverter = (v, prefix) => convertHeadersInit(v, prefix);
const bodyInitConverter = (v, prefix, context) => (v === null ? null : convertBodyInit(v, prefix, context));

webidl.converters.RequestRedirect ??= webidl.createEnumConverter("RequestRedirect", [
  "follow",
  "error",
  "manual",
]);

// Member records without a prototype: deno_webidl reads `required` and `defaultValue` on each, and
// WebIDL's conversion consults nothing a step can put on Object.prototype.
const requestInitConverter = webidl.createDictionaryConverter("RequestInit", [
  { __proto__: null, key: "method", converter: webidl.converters.ByteString },
  { __proto__: null, key: "headers", converter: headersInitConverter },
  { __proto__: null, key: "body", converter: bodyInitConverter },
  { __proto__: null, key: "referrer", converter: webidl.converters.USVString },
  {
    __proto__: null,
    key: "referrerPolicy",
    converter: webidl.createEnumConverter("ReferrerPolicy", [
      "",
      "no-referrer",
      "no-referrer-when-downgrade",
      "same-origin",
      "origin",
      "strict-origin",
      "origin-when-cross-origin",
      "strict-origin-when-cross-origin",
      "unsafe-url",
    ]),
  },
  {
    __proto__: null,
    key: "mode",
    converter: webidl.createEnumConverter("RequestMode", ["navigate", "same-origin", "no-cors", "cors"]),
  },
  {
    __proto__: null,
    key: "credentials",
    converter: webidl.createEnumConverter("RequestCredentials", ["omit", "same-origin", "include"]),
  },
  {
    __proto__: null,
    key: "cache",
    converter: webidl.createEnumConverter("RequestCache", [
      "default",
      "no-store",
      "reload",
      "no-cache",
      "force-cache",
      "only-if-cached",
    ]),
  },
  { __proto__: null, key: "redirect", converter: webidl.converters.RequestRedirect },
  { __proto__: null, key: "integrity", converter: webidl.converters.DOMString },
  { __proto__: null, key: "keepalive", converter: webidl.converters.boolean },
  {
    __proto__: null,
    key: "signal",
    converter: webidl.createNullableConverter(
      webidl.createInterfaceConverter("AbortSignal", AbortSignalPrototype),
    ),
  },
  { __proto__: null, key: "duplex", converter: webidl.createEnumConverter("RequestDuplex", ["half"]) },
  { __proto__: null, key: "priority", converter: webidl.createEnumConverter("RequestPriority", ["high", "low", "auto"]) },
  { __proto__: null, key: "window", converter: anyConverter },
]);

function defaultOptions() {
  return {
    __proto__: null,
    cache: "default",
    credentials: "same-origin",
    mode: "cors",
    integrity: "",
    keepalive: false,
    // "client", "no-referrer" or a URL's serialisation (Fetch's request referrer).
    referrer: "client",
    referrerPolicy: "",
    priority: "auto",
    duplex: "half",
  };
}

function isRequest(v) {
  return ObjectPrototypeIsPrototypeOf(RequestPrototype, v) && v[webidl.brand] === webidl.brand;
}

const _brandOnly = Symbol("brandOnly");

class Request {
  [_method] = "GET";
  [_url] = "";
  [_redirect] = "follow";
  [_signal] = null;
  [_headers] = null;
  [_body] = null;
  [_options] = null;

  /**
   * @param {RequestInfo} input
   * @param {RequestInit} init
   */
  constructor(input, init = undefined) {
    if (input === _brandOnly) {
      this[webidl.brand] = webidl.brand;
      return;
    }
    const prefix = "Failed to construct 'Request'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    this[webidl.brand] = webidl.brand;

    let inputRequest = null;
    if (!isRequest(input)) {
      input = webidl.converters.USVString(input, prefix, "Argument 1");
    } else {
      inputRequest = input;
    }
    init = requestInitConverter(init, prefix, "Argument 2");

    let parentSignal = null;
    let list;
    if (inputRequest === null) {
      const parsed = parseAbsoluteUrl(input, prefix);
      if (URLPrototypeGetUsername(parsed) !== "" || URLPrototypeGetPassword(parsed) !== "") {
        throw new TypeError(`${prefix}: Request URL must not include credentials`);
      }
      this[_url] = URLPrototypeGetHref(parsed);
      this[_method] = "GET";
      this[_redirect] = "follow";
      this[_options] = defaultOptions();
      list = [];
    } else {
      this[_url] = inputRequest[_url];
      this[_method] = inputRequest[_method];
      this[_redirect] = inputRequest[_redirect];
      const o = inputRequest[_options];
      this[_options] = { __proto__: null, ...o };
      parentSignal = inputRequest[_signal];
      list = cloneList(headerListFromHeaders(inputRequest[_headers]));
    }

    if (init.window !== undefined && init.window !== null) {
      throw new TypeError(`${prefix}: 'window' option must be null`);
    }
    const options = this[_options];
    // Fetch: "If init is not empty", a request made from another one starts afresh.
    if (inputRequest !== null && ObjectKeys(init).length > 0) {
      options.referrer = "client";
      options.referrerPolicy = "";
    }
    if (init.referrer !== undefined) {
      const referrer = init.referrer;
      if (referrer === "") {
        options.referrer = "no-referrer";
      } else {
        let parsed;
        try {
          parsed = new URL(referrer);
        } catch {
          throw new TypeError(`${prefix}: Referrer '${referrer}' is not a valid URL`);
        }
        const isClient = URLPrototypeGetProtocol(parsed) === "about:" && URLPrototypeGetPathname(parsed) === "client";
        options.referrer = isClient ? "client" : URLPrototypeGetHref(parsed);
      }
    }
    if (init.referrerPolicy !== undefined) options.referrerPolicy = init.referrerPolicy;
    if (init.mode !== undefined) {
      if (init.mode === "navigate") {
        throw new TypeError(`${prefix}: 'mode' cannot be 'navigate'`);
      }
      options.mode = init.mode;
    }
    if (init.credentials !== undefined) options.credentials = init.credentials;
    if (init.cache !== undefined) options.cache = init.cache;
    if (options.cache === "only-if-cached" && options.mode !== "same-origin") {
      throw new TypeError(`${prefix}: 'cache' can be 'only-if-cached' only when 'mode' is 'same-origin'`);
    }
    if (init.redirect !== undefined) this[_redirect] = init.redirect;
    if (init.integrity !== undefined) options.integrity = init.integrity;
    if (init.keepalive !== undefined) options.keepalive = init.keepalive;

    if (init.method !== undefined) {
      const m = init.method;
      if (!isValidHeaderName(m)) {
        throw new TypeError(`${prefix}: '${m}' is not a valid HTTP method`);
      }
      if (isForbiddenMethod(m)) {
        throw new TypeError(`${prefix}: '${m}' HTTP method is unsupported`);
      }
      this[_method] = normalizeMethod(m);
    }

    if (init.signal !== undefined) parentSignal = init.signal;
    if (init.priority !== undefined) options.priority = init.priority;

    const method = this[_method];
    if (options.mode === "no-cors" && method !== "GET" && method !== "HEAD" && method !== "POST") {
      throw new TypeError(`${prefix}: '${method}' is unsupported in no-cors mode`);
    }

    // this's signal follows the given signal (Fetch: "create a dependent abort signal").
    this[_signal] = parentSignal === null
      ? newSignal()
      : createDependentAbortSignal(new SafeArrayIterator([parentSignal]), prefix);

    const headers = headersFromList(list, "request");
    this[_headers] = headers;
    if (init.headers !== undefined) {
      replaceHeaderList(headers, []);
      fillHeaders(headers, init.headers);
    }

    const inputBody = inputRequest !== null ? inputRequest[_body] : null;
    const hasInitBody = init.body !== undefined && init.body !== null;
    if ((hasInitBody || inputBody !== null) && (method === "GET" || method === "HEAD")) {
      throw new TypeError(`${prefix}: Request with GET/HEAD method cannot have body`);
    }

    let initBody = null;
    if (hasInitBody) {
      const extracted = extractBody(init.body);
      initBody = extracted.body;
      const list2 = headerListFromHeaders(headers);
      if (extracted.contentType !== null && !listContains(list2, "content-type")) {
        listAppend(list2, "Content-Type", extracted.contentType);
        replaceHeaderList(headers, list2);
      }
    }

    // A body with no source (a stream) can only be sent half-duplex, and only in "cors" or
    // "same-origin" mode (Fetch, new Request() step 41).
    const streamBody = initBody !== null ? isStreamBodyInit(init.body) : inputBody !== null && inputBody.length === null;
    if (streamBody) {
      if (initBody !== null && init.duplex === undefined) {
        throw new TypeError(`${prefix}: a stream body needs the 'duplex' option ('half')`);
      }
      if (options.mode !== "same-origin" && options.mode !== "cors") {
        throw new TypeError(`${prefix}: a stream body needs 'mode' to be 'cors' or 'same-origin'`);
      }
    }

    let finalBody = initBody;
    if (initBody === null && inputBody !== null) {
      if (inputBody.isUnusable()) {
        throw new TypeError(`${prefix}: Input request's body is unusable (already read or locked)`);
      }
      finalBody = inputBody.transfer();
    }
    this[_body] = finalBody;
  }

  get method() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_method];
  }

  get url() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_url];
  }

  get headers() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_headers];
  }

  get destination() {
    webidl.assertBranded(this, RequestPrototype);
    return "";
  }

  get referrer() {
    webidl.assertBranded(this, RequestPrototype);
    const r = this[_options].referrer;
    if (r === "no-referrer") return "";
    if (r === "client") return "about:client";
    return r;
  }

  get referrerPolicy() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_options].referrerPolicy;
  }

  get mode() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_options].mode;
  }

  get credentials() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_options].credentials;
  }

  get cache() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_options].cache;
  }

  get redirect() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_redirect];
  }

  get integrity() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_options].integrity;
  }

  get keepalive() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_options].keepalive;
  }

  get isReloadNavigation() {
    webidl.assertBranded(this, RequestPrototype);
    return false;
  }

  get isHistoryNavigation() {
    webidl.assertBranded(this, RequestPrototype);
    return false;
  }

  get signal() {
    webidl.assertBranded(this, RequestPrototype);
    return this[_signal];
  }

  get duplex() {
    webidl.assertBranded(this, RequestPrototype);
    return "half";
  }

  clone() {
    webidl.assertBranded(this, RequestPrototype);
    const body = this[_body];
    if (body !== null && body.isUnusable()) {
      throw new TypeError("Failed to execute 'clone' on 'Request': body is unusable (already read or locked)");
    }
    const r = new Request(_brandOnly);
    r[_method] = this[_method];
    r[_url] = this[_url];
    r[_redirect] = this[_redirect];
    r[_options] = { __proto__: null, ...this[_options] };
    r[_headers] = headersFromList(
      cloneList(headerListFromHeaders(this[_headers])),
      guardFromHeaders(this[_headers]),
    );
    r[_body] = body === null ? null : body.clone();
    r[_signal] = createDependentAbortSignal(new SafeArrayIterator([this[_signal]]), "Failed to execute 'clone' on 'Request'");
    return r;
  }

  [SymbolFor("Deno.privateCustomInspect")](inspect, inspectOptions) {
    return `Request ${
      inspect({
        method: this[_method],
        url: this[_url],
        headers: this[_headers],
        bodyUsed: this[_body] !== null && this[_body].isUsed(),
        redirect: this[_redirect],
      }, inspectOptions)
    }`;
  }
}

mixinBody(Request.prototype, Request.prototype, "Request");
webidl.configureInterface(Request);
const RequestPrototype = Request.prototype;

/** Serialised URL without the fragment (what goes on the wire). */
function urlWithoutFragment(url) {
  const hash = StringPrototypeIndexOf(url, "#");
  return hash === -1 ? url : StringPrototypeSlice(url, 0, hash);
}

export {
  _method,
  _redirect,
  _signal,
  _url,
  isForbiddenMethod,
  isRequest,
  normalizeMethod,
  parseAbsoluteUrl,
  Request,
  RequestPrototype,
  urlWithoutFragment,
};
