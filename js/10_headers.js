// codestep fetch polyfill: the `Headers` interface (WHATWG Fetch section 5.2).
//
// The header list is an array of [name, value] pairs. Names keep the case the
// caller gave them (Rust lower-cases them on the wire anyway); every lookup is
// case-insensitive. Everything here uses primordials so that user code which
// tampers with builtin prototypes (Array.prototype.push, String.prototype.
// toLowerCase, Symbol.iterator, ...) cannot change how the polyfill behaves.
//
// Guards: "immutable" (Response.error()/redirect(), fetch() results, a
// Request's headers once its body is sent) and "none". The spec's "request" /
// "response" guards filter forbidden header names, which only matters in
// browsers; like Deno and Node we do not filter them (the Rust egress layer
// decides what actually goes on the wire), so they behave like "none".

import { core, primordials } from "ext:core/mod.js";

const {
  ArrayIsArray,
  ArrayPrototype,
  ArrayPrototypePush,
  ArrayPrototypeSymbolIterator,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ObjectHasOwn,
  ObjectPrototypeIsPrototypeOf,
  ReflectApply,
  ReflectGetOwnPropertyDescriptor,
  ReflectOwnKeys,
  SafeMap,
  MapPrototypeGet,
  MapPrototypeSet,
  StringPrototypeCharCodeAt,
  StringPrototypeSlice,
  StringPrototypeToLowerCase,
  Symbol,
  SymbolFor,
  SymbolIterator,
  TypeError,
} = primordials;

const webidl = core.loadExtScript("ext:deno_webidl/00_webidl.js");

const _headerList = Symbol("[[headerList]]");
const _guard = Symbol("[[guard]]");
const _iterableHeaders = Symbol("[[iterableHeaders]]");
const _iterableCache = Symbol("[[iterableHeadersCache]]");

// RFC 9110 token.
// RFC 9110's token characters by char code. A table rather than a regular expression: V8 compiles a
// regular expression on its first use in an isolate, which would be again in every step process.
const TOKEN_CHARS = new Uint8Array(128);
for (let i = 0; i < 15; i++) TOKEN_CHARS[StringPrototypeCharCodeAt("!#$%&'*+-.^_`|~", i)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN_CHARS[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN_CHARS[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN_CHARS[c] = 1;

/** ASCII lower-case (header names are ByteStrings, so no locale issues). */
function byteLowerCase(s) {
  // Fast path: nothing to do for already-lower-case names.
  let needs = false;
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c >= 0x41 && c <= 0x5a) {
      needs = true;
      break;
    }
  }
  return needs ? StringPrototypeToLowerCase(s) : s;
}

function isHttpWhitespace(c) {
  return c === 0x09 || c === 0x0a || c === 0x0d || c === 0x20;
}

/** Strip leading and trailing HTTP whitespace (tab, LF, CR, space). */
function normalizeHeaderValue(v) {
  let start = 0;
  let end = v.length;
  while (start < end && isHttpWhitespace(StringPrototypeCharCodeAt(v, start))) {
    start++;
  }
  while (end > start && isHttpWhitespace(StringPrototypeCharCodeAt(v, end - 1))) {
    end--;
  }
  return start === 0 && end === v.length ? v : StringPrototypeSlice(v, start, end);
}

function isValidHeaderName(name) {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = StringPrototypeCharCodeAt(name, i);
    if (c > 0x7f || TOKEN_CHARS[c] === 0) return false;
  }
  return true;
}

/** A normalised value is valid when it has no NUL, CR or LF (and is a ByteString). */
function isValidHeaderValue(value) {
  for (let i = 0; i < value.length; i++) {
    const c = StringPrototypeCharCodeAt(value, i);
    if (c === 0x00 || c === 0x0a || c === 0x0d || c > 0xff) return false;
  }
  return true;
}

function checkName(name) {
  if (!isValidHeaderName(name)) {
    throw new TypeError(`Invalid header name: "${name}"`);
  }
}

function checkValue(name, value) {
  if (!isValidHeaderValue(value)) {
    throw new TypeError(`Invalid header value for "${name}"`);
  }
}

// ---- header list primitives (operate on a raw list) ------------------------

function listContains(list, lowerName) {
  for (let i = 0; i < list.length; i++) {
    if (byteLowerCase(list[i][0]) === lowerName) return true;
  }
  return false;
}

/** "get": the combined value, or null. `lowerName` must be lower-case. */
function listGet(list, lowerName) {
  let out = null;
  for (let i = 0; i < list.length; i++) {
    const entry = list[i];
    if (byteLowerCase(entry[0]) === lowerName) {
      out = out === null ? entry[1] : out + ", " + entry[1];
    }
  }
  return out;
}

/** All values of a header, uncombined. */
function listGetAll(list, lowerName) {
  const out = [];
  for (let i = 0; i < list.length; i++) {
    const entry = list[i];
    if (byteLowerCase(entry[0]) === lowerName) ArrayPrototypePush(out, entry[1]);
  }
  return out;
}

/** "get, decode, and split" (Fetch section 2.2.2): used for Content-Type parsing. */
function listGetDecodeSplit(list, lowerName) {
  const value = listGet(list, lowerName);
  if (value === null) return null;
  const values = [];
  let temp = "";
  let i = 0;
  while (true) {
    // Collect up to '"' or ','.
    while (i < value.length) {
      const c = StringPrototypeCharCodeAt(value, i);
      if (c === 0x22 || c === 0x2c) break;
      temp += value[i];
      i++;
    }
    if (i < value.length && StringPrototypeCharCodeAt(value, i) === 0x22) {
      // Quoted string: copy verbatim including quotes and escapes.
      temp += '"';
      i++;
      while (i < value.length) {
        const c = StringPrototypeCharCodeAt(value, i);
        if (c === 0x5c && i + 1 < value.length) {
          temp += value[i] + value[i + 1];
          i += 2;
          continue;
        }
        temp += value[i];
        i++;
        if (c === 0x22) break;
      }
      if (i < value.length) continue;
    }
    // Trim tabs and spaces.
    let s = 0;
    let e = temp.length;
    while (s < e && (temp[s] === " " || temp[s] === "\t")) s++;
    while (e > s && (temp[e - 1] === " " || temp[e - 1] === "\t")) e--;
    ArrayPrototypePush(values, StringPrototypeSlice(temp, s, e));
    temp = "";
    if (i >= value.length) break;
    i++; // skip ','
  }
  return values;
}

function listDelete(list, lowerName) {
  for (let i = 0; i < list.length;) {
    if (byteLowerCase(list[i][0]) === lowerName) {
      ArrayPrototypeSplice(list, i, 1);
    } else {
      i++;
    }
  }
}

/** "set": replace the first match, drop the others, or append. */
function listSet(list, name, value) {
  const lowerName = byteLowerCase(name);
  let found = false;
  for (let i = 0; i < list.length;) {
    if (byteLowerCase(list[i][0]) === lowerName) {
      if (!found) {
        list[i] = [list[i][0], value];
        found = true;
        i++;
      } else {
        ArrayPrototypeSplice(list, i, 1);
      }
    } else {
      i++;
    }
  }
  if (!found) ArrayPrototypePush(list, [name, value]);
}

/** Copy of a list (pairs are treated as immutable, so a shallow copy is enough). */
function cloneList(list) {
  const out = [];
  for (let i = 0; i < list.length; i++) ArrayPrototypePush(out, [list[i][0], list[i][1]]);
  return out;
}

// ---- Headers ----------------------------------------------------------------

function appendHeader(headers, name, value) {
  value = normalizeHeaderValue(value);
  checkName(name);
  checkValue(name, value);
  if (headers[_guard] === "immutable") {
    throw new TypeError("Headers are immutable");
  }
  headers[_iterableCache] = null;
  ArrayPrototypePush(headers[_headerList], [name, value]);
}

// ---- HeadersInit: (sequence<sequence<ByteString>> or record<ByteString, ByteString>) ----
//
// Converted exactly as WebIDL says, because user code can observe every step (a Proxy sees its
// traps, a getter sees its calls, a patched iterator is used):
//   - not an Object: TypeError;
//   - GetMethod(V, @@iterator) once; if it is not undefined/null it must be callable, and the
//     sequence is made by calling *that* method and stepping the iterator it returned (its `next`
//     read once); each element must itself be an Object with an iterator, converted the same way;
//   - otherwise a record: [[OwnPropertyKeys]], then for each key [[GetOwnProperty]]; only
//     enumerable ones count, their key is converted to a ByteString (a Symbol key throws), then
//     their value is read ([[Get]]) and converted.
// The whole value is converted before anything is appended (Fetch "fill" runs on the result).
// Two fast paths give the same observable result with less work: a real Headers object whose
// iterator is untouched (its list is copied), and a real Array whose iterator is untouched (read
// by index, which is what %ArrayIteratorPrototype%.next does).

const ArrayIteratorProto = ObjectGetPrototypeOf(ArrayPrototypeSymbolIterator([]));
const originalArrayIterator = ArrayPrototype[SymbolIterator];
const originalArrayIteratorNext = ObjectGetOwnPropertyDescriptor(ArrayIteratorProto, "next").value;

function initError(prefix, what) {
  return new TypeError(`${prefix}: ${what}`);
}

/** GetMethod(V, P) (ECMA-262 7.3.10). */
function getMethod(V, P, prefix) {
  const func = V[P];
  if (func === undefined || func === null) return undefined;
  if (typeof func !== "function") {
    throw initError(prefix, "the value's Symbol.iterator is not a function");
  }
  return func;
}

/** True when an Array iterates like the builtin array iterator (so indexing is equivalent). */
function iteratesLikeArray(V, method) {
  if (method !== originalArrayIterator || !ArrayIsArray(V) || core.isProxy(V)) return false;
  const d = ObjectGetOwnPropertyDescriptor(ArrayIteratorProto, "next");
  return d !== undefined && d.value === originalArrayIteratorNext;
}

/** WebIDL "create a sequence from an iterable": `each` receives every value in order. */
function iterateWith(V, method, prefix, each) {
  if (iteratesLikeArray(V, method)) {
    for (let i = 0; i < V.length; i++) each(V[i]);
    return;
  }
  const iterator = ReflectApply(method, V, []);
  if (webidl.type(iterator) !== "Object") {
    throw initError(prefix, "the iterator returned by Symbol.iterator is not an object");
  }
  const next = iterator.next;
  while (true) {
    const result = ReflectApply(next, iterator, []);
    if (webidl.type(result) !== "Object") {
      throw initError(prefix, "the iterator's next() did not return an object");
    }
    if (result.done) return;
    each(result.value);
  }
}

function toByteString(v, prefix) {
  return webidl.converters.ByteString(v, prefix, "Argument 1");
}

/** sequence<ByteString>: one header "pair" (its length is checked later, by fill). */
function convertPair(value, prefix) {
  if (webidl.type(value) !== "Object") {
    throw initError(prefix, "a header pair must be a sequence (an iterable object)");
  }
  const method = getMethod(value, SymbolIterator, prefix);
  if (method === undefined) {
    throw initError(prefix, "a header pair must be a sequence (an iterable object)");
  }
  const out = [];
  iterateWith(value, method, prefix, (item) => {
    ArrayPrototypePush(out, toByteString(item, prefix));
  });
  return out;
}

/**
 * Convert a HeadersInit to a list of pairs (arrays of ByteStrings; sequence pairs may have the
 * wrong length, which fillHeaders reports). `V` is not undefined.
 */
function convertHeadersInit(V, prefix = "Failed to construct 'Headers'") {
  if (webidl.type(V) !== "Object") {
    throw initError(
      prefix,
      "Argument 1 can not be converted to '(sequence<sequence<ByteString>> or record<ByteString, ByteString>)'",
    );
  }
  const method = getMethod(V, SymbolIterator, prefix);
  if (method !== undefined) {
    if (method === originalHeadersIterator && isHeaders(V) && !core.isProxy(V) && headersIteratorIsIntact()) {
      return cloneList(V[_headerList]);
    }
    const pairs = [];
    iterateWith(V, method, prefix, (item) => {
      ArrayPrototypePush(pairs, convertPair(item, prefix));
    });
    return pairs;
  }
  // record<ByteString, ByteString>
  const pairs = [];
  const keys = ReflectOwnKeys(V);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const desc = ReflectGetOwnPropertyDescriptor(V, key);
    if (desc === undefined || desc.enumerable !== true) continue;
    const name = toByteString(key, prefix);
    const value = toByteString(V[key], prefix);
    ArrayPrototypePush(pairs, [name, value]);
  }
  return pairs;
}

/** Fetch "fill": append each converted pair to `headers` (which checks names, values and the guard). */
function fillHeaders(headers, pairs) {
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i];
    if (pair.length !== 2) {
      throw new TypeError(`Invalid header: expected a [name, value] pair, got ${pair.length} item(s)`);
    }
    appendHeader(headers, pair[0], pair[1]);
  }
}

class Headers {
  [_headerList] = [];
  [_guard] = "none";
  [_iterableCache] = null;

  /** @param {HeadersInit} [init] */
  constructor(init = undefined) {
    if (init === _brandOnly) {
      this[webidl.brand] = webidl.brand;
      return;
    }
    const prefix = "Failed to construct 'Headers'";
    const pairs = init === undefined ? null : convertHeadersInit(init, prefix);
    this[webidl.brand] = webidl.brand;
    if (pairs !== null) fillHeaders(this, pairs);
  }

  /** The sorted-and-combined list the iterators walk (Fetch "sort and combine"). */
  get [_iterableHeaders]() {
    const cached = this[_iterableCache];
    if (cached !== null) return cached;
    const list = this[_headerList];
    const combined = [];
    const index = new SafeMap();
    for (let i = 0; i < list.length; i++) {
      const name = byteLowerCase(list[i][0]);
      const value = list[i][1];
      if (name === "set-cookie") {
        ArrayPrototypePush(combined, [name, value]);
        continue;
      }
      const at = MapPrototypeGet(index, name);
      if (at === undefined) {
        MapPrototypeSet(index, name, combined.length);
        ArrayPrototypePush(combined, [name, value]);
      } else {
        combined[at] = [name, combined[at][1] + ", " + value];
      }
    }
    // Stable sort keeps set-cookie values in insertion order.
    ArrayPrototypeSort(combined, (a, b) => (a[0] === b[0] ? 0 : a[0] < b[0] ? -1 : 1));
    this[_iterableCache] = combined;
    return combined;
  }

  append(name, value) {
    webidl.assertBranded(this, HeadersPrototype);
    const prefix = "Failed to execute 'append' on 'Headers'";
    webidl.requiredArguments(arguments.length, 2, prefix);
    name = webidl.converters.ByteString(name, prefix, "Argument 1");
    value = webidl.converters.ByteString(value, prefix, "Argument 2");
    appendHeader(this, name, value);
  }

  delete(name) {
    webidl.assertBranded(this, HeadersPrototype);
    const prefix = "Failed to execute 'delete' on 'Headers'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    name = webidl.converters.ByteString(name, prefix, "Argument 1");
    checkName(name);
    if (this[_guard] === "immutable") throw new TypeError("Headers are immutable");
    const lower = byteLowerCase(name);
    if (!listContains(this[_headerList], lower)) return;
    this[_iterableCache] = null;
    listDelete(this[_headerList], lower);
  }

  get(name) {
    webidl.assertBranded(this, HeadersPrototype);
    const prefix = "Failed to execute 'get' on 'Headers'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    name = webidl.converters.ByteString(name, prefix, "Argument 1");
    checkName(name);
    return listGet(this[_headerList], byteLowerCase(name));
  }

  getSetCookie() {
    webidl.assertBranded(this, HeadersPrototype);
    return listGetAll(this[_headerList], "set-cookie");
  }

  has(name) {
    webidl.assertBranded(this, HeadersPrototype);
    const prefix = "Failed to execute 'has' on 'Headers'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    name = webidl.converters.ByteString(name, prefix, "Argument 1");
    checkName(name);
    return listContains(this[_headerList], byteLowerCase(name));
  }

  set(name, value) {
    webidl.assertBranded(this, HeadersPrototype);
    const prefix = "Failed to execute 'set' on 'Headers'";
    webidl.requiredArguments(arguments.length, 2, prefix);
    name = webidl.converters.ByteString(name, prefix, "Argument 1");
    value = webidl.converters.ByteString(value, prefix, "Argument 2");
    value = normalizeHeaderValue(value);
    checkName(name);
    checkValue(name, value);
    if (this[_guard] === "immutable") throw new TypeError("Headers are immutable");
    this[_iterableCache] = null;
    listSet(this[_headerList], name, value);
  }

  [SymbolFor("Deno.privateCustomInspect")](inspect, inspectOptions) {
    const out = {};
    const entries = this[_iterableHeaders];
    for (let i = 0; i < entries.length; i++) {
      const name = entries[i][0];
      const value = ObjectHasOwn(out, name) ? out[name] + ", " + entries[i][1] : entries[i][1];
      ObjectDefineProperty(out, name, { __proto__: null, value, enumerable: true, writable: true, configurable: true });
    }
    return `Headers ${inspect(out, inspectOptions)}`;
  }
}

const _brandOnly = Symbol("brandOnly");

webidl.mixinPairIterable("Headers", Headers, _iterableHeaders, 0, 1);
webidl.configureInterface(Headers);
const HeadersPrototype = Headers.prototype;

function isHeaders(v) {
  return ObjectPrototypeIsPrototypeOf(HeadersPrototype, v) && v[webidl.brand] === webidl.brand;
}

// What iterating a Headers object runs, as it was before any user code: when both are still in
// place, iterating one yields its own (sorted, combined) entries, so copying its list is the same.
const originalHeadersIterator = HeadersPrototype[SymbolIterator];
const HeadersIteratorProto = ObjectGetPrototypeOf(ReflectApply(originalHeadersIterator, new Headers(), []));
const originalHeadersIteratorNext = ObjectGetOwnPropertyDescriptor(HeadersIteratorProto, "next").value;

function headersIteratorIsIntact() {
  const d = ObjectGetOwnPropertyDescriptor(HeadersIteratorProto, "next");
  return d !== undefined && d.value === originalHeadersIteratorNext;
}

// ---- internal constructors / accessors used by Request, Response, fetch ----

/** A Headers object wrapping (not copying) `list`, with the given guard. */
function headersFromList(list, guard) {
  const h = new Headers(_brandOnly);
  h[_headerList] = list;
  h[_guard] = guard;
  return h;
}

function headerListFromHeaders(headers) {
  return headers[_headerList];
}

function guardFromHeaders(headers) {
  return headers[_guard];
}

function setGuard(headers, guard) {
  headers[_guard] = guard;
}

/** Replace the list in place (used when Request/Response init.headers is given). */
function replaceHeaderList(headers, list) {
  headers[_iterableCache] = null;
  headers[_headerList] = list;
}

/** Internal append that bypasses the guard (values are trusted/validated). */
function listAppend(list, name, value) {
  ArrayPrototypePush(list, [name, value]);
}

/** Validate and normalise a [name, value] pair coming from Rust (op replies). */
function listFromOpPairs(pairs) {
  const out = [];
  if (!ArrayIsArray(pairs)) return out;
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i];
    ArrayPrototypePush(out, [`${p[0]}`, `${p[1]}`]);
  }
  return out;
}

export {
  byteLowerCase,
  cloneList,
  convertHeadersInit,
  fillHeaders,
  guardFromHeaders,
  headerListFromHeaders,
  Headers,
  headersFromList,
  HeadersPrototype,
  isValidHeaderName,
  isValidHeaderValue,
  listAppend,
  listContains,
  listDelete,
  listFromOpPairs,
  listGet,
  listGetAll,
  listGetDecodeSplit,
  listSet,
  normalizeHeaderValue,
  replaceHeaderList,
  setGuard,
};
