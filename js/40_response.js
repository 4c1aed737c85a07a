// codestep fetch polyfill: the `Response` interface (WHATWG Fetch section 5.5).
//
// Response types: "default" (constructed by the step), "basic" (returned by
// fetch), "error" (Response.error()). Note for redirect: "manual": the spec
// returns an "opaqueredirect" filtered response (status 0, no headers); like
// Deno and Node we return the real 3xx response, type "basic", with its
// Location header readable, which is what server-side callers need.

import { core, primordials } from "ext:core/mod.js";
import {
  convertHeadersInit,
  fillHeaders,
  guardFromHeaders,
  headerListFromHeaders,
  headersFromList,
  cloneList,
  listAppend,
  listContains,
  replaceHeaderList,
} from "ext:codestep/10_headers.js";
import { _body, _headers, convertBodyInit, extractBody, mixinBody } from "ext:codestep/20_body.js";
import { parseAbsoluteUrl, urlWithoutFragment } from "ext:codestep/30_request.js";

const {
  JSONStringify,
  ObjectGetOwnPropertyDescriptor,
  ObjectPrototypeIsPrototypeOf,
  RangeError,
  StringPrototypeCharCodeAt,
  Symbol,
  SymbolFor,
  TypeError,
  uncurryThis,
} = primordials;

const webidl = core.loadExtScript("ext:deno_webidl/00_webidl.js");
const { URLPrototype } = core.loadExtScript("ext:deno_web/00_url.js");
const URLPrototypeGetHref = uncurryThis(ObjectGetOwnPropertyDescriptor(URLPrototype, "href").get);

const _type = Symbol("[[type]]");
const _status = Symbol("[[status]]");
const _statusText = Symbol("[[statusText]]");
const _url = Symbol("[[url]]");
const _redirected = Symbol("[[redirected]]");

const REDIRECT_STATUSES = [301, 302, 303, 307, 308];

function isNullBodyStatus(status) {
  return status === 101 || status === 103 || status === 204 || status === 205 || status === 304;
}

function isRedirectStatus(status) {
  for (let i = 0; i < REDIRECT_STATUSES.length; i++) {
    if (REDIRECT_STATUSES[i] === status) return true;
  }
  return false;
}

/** reason-phrase = *( HTAB / SP / VCHAR / obs-text ) */
function isValidReasonPhrase(s) {
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c === 0x09 || (c >= 0x20 && c <= 0x7e) || (c >= 0x80 && c <= 0xff)) continue;
    return false;
  }
  return true;
}

// Member records without a prototype, as RequestInit's (`js/30_request.js`).
const responseInitConverter = webidl.createDictionaryConverter("ResponseInit", [
  { __proto__: null, key: "status", defaultValue: 200, converter: webidl.converters["unsigned short"] },
  { __proto__: null, key: "statusText", defaultValue: "", converter: webidl.converters.ByteString },
  { __proto__: null, key: "headers", converter: (v, prefix) => convertHeadersInit(v, prefix) },
]);

const _brandOnly = Symbol("brandOnly");

/** "initialize a response" (Fetch section 5.5). */
function initializeResponse(response, init, body, prefix) {
  const status = init.status;
  if (status < 200 || status > 599) {
    throw new RangeError(`${prefix}: The status provided (${status}) is outside the range [200, 599]`);
  }
  if (!isValidReasonPhrase(init.statusText)) {
    throw new TypeError(`${prefix}: Invalid status text: "${init.statusText}"`);
  }
  response[_status] = status;
  response[_statusText] = init.statusText;
  const headers = response[_headers];
  if (init.headers !== undefined) {
    fillHeaders(headers, init.headers);
  }
  if (body !== null) {
    if (isNullBodyStatus(status)) {
      throw new TypeError(`${prefix}: Response with null body status (${status}) cannot have a body`);
    }
    response[_body] = body.body;
    const list = headerListFromHeaders(headers);
    if (body.contentType !== null && !listContains(list, "content-type")) {
      listAppend(list, "Content-Type", body.contentType);
      replaceHeaderList(headers, list);
    }
  }
}

class Response {
  [_type] = "default";
  [_status] = 200;
  [_statusText] = "";
  [_url] = null;
  [_redirected] = false;
  [_headers] = null;
  [_body] = null;

  /**
   * @param {BodyInit | null} body
   * @param {ResponseInit} init
   */
  constructor(body = null, init = undefined) {
    this[webidl.brand] = webidl.brand;
    if (body === _brandOnly) return;
    const prefix = "Failed to construct 'Response'";
    // Arguments are converted in order: the body (a toString runs) before the init dictionary.
    body = body === null || body === undefined ? null : convertBodyInit(body, prefix, "Argument 1");
    init = responseInitConverter(init, prefix, "Argument 2");
    this[_headers] = headersFromList([], "response");
    const extracted = body === null ? null : extractBody(body);
    initializeResponse(this, init, extracted, prefix);
  }

  static error() {
    const r = new Response(_brandOnly);
    r[_type] = "error";
    r[_status] = 0;
    r[_statusText] = "";
    r[_headers] = headersFromList([], "immutable");
    return r;
  }

  static redirect(url, status = 302) {
    const prefix = "Failed to execute 'Response.redirect'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    url = webidl.converters.USVString(url, prefix, "Argument 1");
    status = webidl.converters["unsigned short"](status, prefix, "Argument 2");
    const parsed = parseAbsoluteUrl(url, prefix);
    if (!isRedirectStatus(status)) {
      throw new RangeError(`${prefix}: Invalid redirect status code: ${status}`);
    }
    const r = new Response(_brandOnly);
    r[_status] = status;
    r[_headers] = headersFromList([["Location", URLPrototypeGetHref(parsed)]], "immutable");
    return r;
  }

  static json(data, init = undefined) {
    const prefix = "Failed to execute 'Response.json'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    init = responseInitConverter(init, prefix, "Argument 2");
    const str = JSONStringify(data);
    if (str === undefined) {
      throw new TypeError(`${prefix}: The data is not JSON serializable`);
    }
    const extracted = extractBody(str);
    extracted.contentType = "application/json";
    const r = new Response(_brandOnly);
    r[_headers] = headersFromList([], "response");
    initializeResponse(r, init, extracted, prefix);
    return r;
  }

  get type() {
    webidl.assertBranded(this, ResponsePrototype);
    return this[_type];
  }

  get url() {
    webidl.assertBranded(this, ResponsePrototype);
    const url = this[_url];
    return url === null ? "" : urlWithoutFragment(url);
  }

  get redirected() {
    webidl.assertBranded(this, ResponsePrototype);
    return this[_redirected];
  }

  get status() {
    webidl.assertBranded(this, ResponsePrototype);
    return this[_status];
  }

  get ok() {
    webidl.assertBranded(this, ResponsePrototype);
    const s = this[_status];
    return s >= 200 && s <= 299;
  }

  get statusText() {
    webidl.assertBranded(this, ResponsePrototype);
    return this[_statusText];
  }

  get headers() {
    webidl.assertBranded(this, ResponsePrototype);
    return this[_headers];
  }

  clone() {
    webidl.assertBranded(this, ResponsePrototype);
    const body = this[_body];
    if (body !== null && body.isUnusable()) {
      throw new TypeError("Failed to execute 'clone' on 'Response': body is unusable (already read or locked)");
    }
    const r = new Response(_brandOnly);
    r[_type] = this[_type];
    r[_status] = this[_status];
    r[_statusText] = this[_statusText];
    r[_url] = this[_url];
    r[_redirected] = this[_redirected];
    r[_headers] = headersFromList(
      cloneList(headerListFromHeaders(this[_headers])),
      guardFromHeaders(this[_headers]),
    );
    r[_body] = body === null ? null : body.clone();
    return r;
  }

  [SymbolFor("Deno.privateCustomInspect")](inspect, inspectOptions) {
    return `Response ${
      inspect({
        type: this[_type],
        url: this[_url] === null ? "" : this[_url],
        redirected: this[_redirected],
        status: this[_status],
        ok: this[_status] >= 200 && this[_status] <= 299,
        statusText: this[_statusText],
        headers: this[_headers],
        bodyUsed: this[_body] !== null && this[_body].isUsed(),
      }, inspectOptions)
    }`;
  }
}

mixinBody(Response.prototype, Response.prototype, "Response");
webidl.configureInterface(Response);
const ResponsePrototype = Response.prototype;

function isResponse(v) {
  return ObjectPrototypeIsPrototypeOf(ResponsePrototype, v) && v[webidl.brand] === webidl.brand;
}

/**
 * A "basic" response as returned by fetch(): immutable headers, body from bytes.
 * `headerList` and `body` (InnerBody | null) are already built by the caller.
 */
function networkResponse({ status, statusText, headerList, url, redirected, body }) {
  const r = new Response(_brandOnly);
  r[_type] = "basic";
  r[_status] = status;
  r[_statusText] = statusText;
  r[_url] = url;
  r[_redirected] = redirected;
  r[_headers] = headersFromList(headerList, "immutable");
  r[_body] = body;
  return r;
}

export { isNullBodyStatus, isResponse, networkResponse, Response, ResponsePrototype };
