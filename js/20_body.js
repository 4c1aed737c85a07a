// codestep fetch polyfill: body extraction, the Body mixin and FormData
// (WHATWG Fetch section 5.1-5.3, XHR section 4.3 FormData, HTML multipart/form-data).
//
// A body is an `InnerBody`. Bodies built from bytes/strings/Blobs stay "static"
// until someone asks for `.body`; only then is a ReadableStream (a byte
// stream, from deno_web) created. Consuming a static body (text(), json(),
// sending it with fetch) reads the bytes directly. Either way the observable
// behaviour is the spec's: a body can be read once, `bodyUsed` flips, reading
// again rejects with a TypeError.

import { core, primordials } from "ext:core/mod.js";
// deno_web's streams are loaded on first use (js/00_globals.js): a body becomes a stream only when
// someone asks for one, so most steps never load them.
import { streams, streamsLoaded } from "ext:codestep/00_globals.js";
import {
  byteLowerCase,
  headerListFromHeaders,
  listGetDecodeSplit,
} from "ext:codestep/10_headers.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototypeGetByteLength,
  ArrayPrototypePush,
  DataViewPrototypeGetBuffer,
  DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset,
  JSONParse,
  NumberPrototypeToString,
  ObjectDefineProperties,
  ObjectGetOwnPropertyDescriptor,
  ObjectPrototypeIsPrototypeOf,
  PromisePrototypeThen,
  PromiseResolve,
  SafeArrayIterator,
  StringPrototypeCharCodeAt,
  StringPrototypeSlice,
  StringPrototypeToWellFormed,
  Symbol,
  SymbolAsyncIterator,
  SymbolFor,
  TypeError,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetLength,
  TypedArrayPrototypeIndexOf,
  TypedArrayPrototypeSet,
  Uint8Array,
  uncurryThis,
} = primordials;

const webidl = core.loadExtScript("ext:deno_webidl/00_webidl.js");
const { Blob, BlobPrototype, File, FilePrototype } = core.loadExtScript("ext:deno_web/09_file.js");
const { parseUrlEncoded, URLSearchParamsPrototype } = core.loadExtScript("ext:deno_web/00_url.js");
const { essence, parseMimeType, serializeMimeType } = core.loadExtScript(
  "ext:deno_web/01_mimesniff.js",
);

// Captured before any user code runs, so overriding Blob.prototype.* has no effect here.
const BlobPrototypeBytes = uncurryThis(BlobPrototype.bytes);
const BlobPrototypeStream = uncurryThis(BlobPrototype.stream);
const BlobPrototypeGetSize = uncurryThis(ObjectGetOwnPropertyDescriptor(BlobPrototype, "size").get);
const BlobPrototypeGetType = uncurryThis(ObjectGetOwnPropertyDescriptor(BlobPrototype, "type").get);
const FilePrototypeGetName = uncurryThis(ObjectGetOwnPropertyDescriptor(FilePrototype, "name").get);
const URLSearchParamsPrototypeToString = uncurryThis(URLSearchParamsPrototype.toString);

const ignore = () => {};
const isBlob = (v) => ObjectPrototypeIsPrototypeOf(BlobPrototype, v);
const isFile = (v) => ObjectPrototypeIsPrototypeOf(FilePrototype, v);
// Until the streams are loaded no stream exists, so this loads nothing (a byte or form body stays cheap).
const isReadableStream = (v) => streamsLoaded() && ObjectPrototypeIsPrototypeOf(streams().ReadableStreamPrototype, v);

/** `new Blob(parts, { type })` without going through Array.prototype[Symbol.iterator]. */
function makeBlob(parts, type) {
  return new Blob(new SafeArrayIterator(parts), { __proto__: null, type });
}

function makeFile(parts, name, type, lastModified) {
  const opts = { __proto__: null, type };
  if (lastModified !== undefined) opts.lastModified = lastModified;
  return new File(new SafeArrayIterator(parts), name, opts);
}

/**
 * A fresh Uint8Array holding bytes [start, end) of `u8`. Built with `new` + %TypedArray%.prototype.set,
 * which (unlike slice()) never consults a user-replaceable `constructor[Symbol.species]`.
 */
function copyRange(u8, start, end) {
  const view = new Uint8Array(
    TypedArrayPrototypeGetBuffer(u8),
    TypedArrayPrototypeGetByteOffset(u8) + start,
    end - start,
  );
  const out = new Uint8Array(end - start);
  TypedArrayPrototypeSet(out, view);
  return out;
}

function copyBytes(u8) {
  return copyRange(u8, 0, TypedArrayPrototypeGetByteLength(u8));
}

/** Copy the bytes of an ArrayBuffer / ArrayBufferView into a fresh Uint8Array. */
function copyBufferSource(source) {
  let view;
  if (ArrayBufferIsView(source)) {
    if (core.isDataView(source)) {
      view = new Uint8Array(
        DataViewPrototypeGetBuffer(source),
        DataViewPrototypeGetByteOffset(source),
        DataViewPrototypeGetByteLength(source),
      );
    } else {
      view = new Uint8Array(
        TypedArrayPrototypeGetBuffer(source),
        TypedArrayPrototypeGetByteOffset(source),
        TypedArrayPrototypeGetByteLength(source),
      );
    }
  } else {
    // ArrayBuffer (or SharedArrayBuffer).
    view = new Uint8Array(source);
  }
  return copyBytes(view);
}

/** ArrayBuffer holding exactly the bytes of `u8`. */
function toArrayBuffer(u8) {
  const buffer = TypedArrayPrototypeGetBuffer(u8);
  if (
    TypedArrayPrototypeGetByteOffset(u8) === 0 &&
    TypedArrayPrototypeGetByteLength(u8) === ArrayBufferPrototypeGetByteLength(buffer)
  ) {
    return buffer;
  }
  return TypedArrayPrototypeGetBuffer(copyBytes(u8));
}

// ---- InnerBody ---------------------------------------------------------------

/** All of a network body's chunks, as one Uint8Array. */
async function readSource(source) {
  const chunks = [];
  let total = 0;
  for (;;) {
    const chunk = await source.next();
    if (chunk === null) break;
    ArrayPrototypePush(chunks, chunk);
    total += TypedArrayPrototypeGetByteLength(chunk);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (let i = 0; i < chunks.length; i++) {
    TypedArrayPrototypeSet(out, chunks[i], offset);
    offset += TypedArrayPrototypeGetByteLength(chunks[i]);
  }
  return out;
}

class InnerBody {
  /** @type {Uint8Array | null} bytes not yet turned into a stream */
  bytes = null;
  /** @type {Blob | null} blob not yet turned into a stream */
  blob = null;
  /** @type {ReadableStream | null} */
  stream = null;
  /**
   * A network body not yet turned into a stream: `next()` gives its next chunk (null at the end, the
   * abort reason or the error as a rejection), `cancel()` stops it, `toStream()` makes its stream. Read
   * whole (`text()`, `json()`, ...) it never becomes a stream, so the streams need not load.
   * @type {{ next: () => Promise<Uint8Array | null>, cancel: () => void, toStream: () => ReadableStream } | null}
   */
  source = null;
  /** static data was consumed without ever creating a stream */
  consumed = false;
  /** @type {number | null} */
  length = null;

  static fromBytes(bytes) {
    const b = new InnerBody();
    b.bytes = bytes;
    b.length = TypedArrayPrototypeGetByteLength(bytes);
    return b;
  }

  static fromBlob(blob) {
    const b = new InnerBody();
    b.blob = blob;
    b.length = BlobPrototypeGetSize(blob);
    return b;
  }

  static fromSource(source) {
    const b = new InnerBody();
    b.source = source;
    return b;
  }

  static fromStream(stream) {
    const b = new InnerBody();
    b.stream = stream;
    return b;
  }

  /** The body's ReadableStream, created on first use. */
  getStream() {
    if (this.stream !== null) return this.stream;
    if (this.source !== null) {
      this.stream = this.source.toStream();
      this.source = null;
      return this.stream;
    }
    if (this.blob !== null) {
      this.stream = BlobPrototypeStream(this.blob);
      this.blob = null;
      return this.stream;
    }
    const consumed = this.consumed;
    const bytes = consumed ? null : this.bytes;
    this.bytes = null;
    this.stream = streams().createReadableByteStream(
      (controller) => {
        // The controller transfers (detaches) enqueued buffers; `bytes` is ours alone.
        if (bytes !== null && TypedArrayPrototypeGetByteLength(bytes) > 0) {
          streams().readableByteStreamControllerEnqueue(controller, bytes);
        }
        streams().readableByteStreamControllerClose(controller);
      },
      () => undefined,
      () => PromiseResolve(undefined),
    );
    // A static body that was already read (or moved to another Request) shows up as its stream
    // would after being read: closed, disturbed and locked (Fetch "fully read" takes a reader).
    if (consumed) {
      streams().readableStreamDisturb(this.stream);
      streams().acquireReadableStreamDefaultReader(this.stream);
    }
    return this.stream;
  }

  /** "disturbed" */
  isUsed() {
    if (this.stream !== null) return streams().isReadableStreamDisturbed(this.stream);
    return this.consumed;
  }

  /** "unusable": disturbed or locked */
  isUnusable() {
    if (this.stream !== null) {
      return streams().isReadableStreamDisturbed(this.stream) || streams().isReadableStreamLocked(this.stream);
    }
    return this.consumed;
  }

  /** Fully read the body. Caller must check `isUnusable()` first. */
  async consume() {
    if (this.stream === null) {
      this.consumed = true;
      if (this.source !== null) {
        const source = this.source;
        this.source = null;
        return await readSource(source);
      }
      if (this.blob !== null) {
        const blob = this.blob;
        this.blob = null;
        return await BlobPrototypeBytes(blob);
      }
      const bytes = this.bytes;
      this.bytes = null;
      return bytes === null ? new Uint8Array(0) : bytes;
    }
    return await streams().readableStreamCollectIntoUint8Array(this.stream);
  }

  /**
   * Cancel the body (fetch aborted). Works on a stream we are reading ourselves: the
   * internal cancel ignores the lock, closes pending reads and tells the source to stop,
   * so an endless body stream does not keep being pulled after an abort.
   */
  cancel(reason) {
    if (this.stream !== null) {
      PromisePrototypeThen(streams().readableStreamCancel(this.stream, reason), undefined, ignore);
    } else {
      this.consumed = true;
      this.bytes = null;
      this.blob = null;
      if (this.source !== null) {
        this.source.cancel();
        this.source = null;
      }
    }
  }

  /** "clone a body" */
  clone() {
    if (this.source !== null) this.getStream();
    if (this.stream === null) {
      if (this.blob !== null) return InnerBody.fromBlob(this.blob);
      // Each copy must own its bytes: consumers get the buffer itself.
      const copy = this.bytes === null ? new Uint8Array(0) : copyBytes(this.bytes);
      return InnerBody.fromBytes(copy);
    }
    const branches = streams().readableStreamTee(this.stream, true);
    this.stream = branches[0];
    const out = InnerBody.fromStream(branches[1]);
    out.length = this.length;
    return out;
  }

  /**
   * Move this body into a new InnerBody (Request constructed from a Request):
   * the new owner gets the data, this one becomes disturbed.
   */
  transfer() {
    let out;
    if (this.source !== null) this.getStream();
    if (this.stream === null) {
      if (this.blob !== null) out = InnerBody.fromBlob(this.blob);
      else out = InnerBody.fromBytes(this.bytes === null ? new Uint8Array(0) : this.bytes);
      this.blob = null;
      this.bytes = null;
      this.consumed = true;
      return out;
    }
    // Tee and drop the second branch: the original stream stays locked (by the
    // tee's reader) and is marked disturbed, the new owner reads branch one.
    const branches = streams().readableStreamTee(this.stream, false);
    PromisePrototypeThen(streams().readableStreamCancel(branches[1], undefined), undefined, ignore);
    streams().readableStreamDisturb(this.stream);
    out = InnerBody.fromStream(branches[0]);
    out.length = this.length;
    return out;
  }
}

// ---- extracting a body -------------------------------------------------------

const _asyncIterable = Symbol("[[asyncIterable]]");

/**
 * Convert a BodyInit argument or member the way WebIDL converts the union
 * (ReadableStream or Blob or BufferSource or FormData or URLSearchParams or USVString), at the
 * time arguments are converted (so a `toString` runs before later members or arguments are read).
 * `V` is not null/undefined. Objects of the union's interfaces pass through; an async iterable
 * (a Deno/Node extension, not in the standard union) is wrapped so extractBody does not read its
 * Symbol.asyncIterator again; everything else becomes a USVString.
 */
function convertBodyInit(V, prefix, context) {
  if (typeof V === "string") return V;
  if (typeof V === "object" && V !== null) {
    if (
      core.isArrayBuffer(V) || core.isSharedArrayBuffer(V) || ArrayBufferIsView(V) || isBlob(V) ||
      isFormData(V) || ObjectPrototypeIsPrototypeOf(URLSearchParamsPrototype, V) || isReadableStream(V)
    ) {
      return V;
    }
    if (typeof V[SymbolAsyncIterator] === "function") return { __proto__: null, [_asyncIterable]: V };
  }
  return webidl.converters.USVString(V, prefix, context);
}

/** Whether a converted BodyInit has no source (Fetch: a stream body), so it needs `duplex`. */
function isStreamBodyInit(converted) {
  return typeof converted === "object" && (isReadableStream(converted) || converted[_asyncIterable] !== undefined);
}

/** A string body's type and bytes (its USVString, UTF-8): also for fetch's common call. */
const STRING_BODY_TYPE = "text/plain;charset=UTF-8";
function stringBodyBytes(s) {
  return core.encode(StringPrototypeToWellFormed(s));
}

/**
 * "extract a body" (Fetch section 5.2). `object` is a BodyInit already converted by
 * convertBodyInit (internal callers may pass a string or one of the union's objects).
 * Returns { body: InnerBody, contentType: string | null }.
 */
function extractBody(object) {
  if (typeof object === "string") {
    return { body: InnerBody.fromBytes(stringBodyBytes(object)), contentType: STRING_BODY_TYPE };
  }
  if (core.isArrayBuffer(object) || core.isSharedArrayBuffer(object) || ArrayBufferIsView(object)) {
    return { body: InnerBody.fromBytes(copyBufferSource(object)), contentType: null };
  }
  if (isBlob(object)) {
    const type = BlobPrototypeGetType(object);
    return { body: InnerBody.fromBlob(object), contentType: type === "" ? null : type };
  }
  if (isFormData(object)) {
    const encoded = encodeFormData(object);
    return { body: InnerBody.fromBlob(encoded.blob), contentType: encoded.contentType };
  }
  if (ObjectPrototypeIsPrototypeOf(URLSearchParamsPrototype, object)) {
    return {
      body: InnerBody.fromBytes(core.encode(URLSearchParamsPrototypeToString(object))),
      contentType: "application/x-www-form-urlencoded;charset=UTF-8",
    };
  }
  if (isReadableStream(object)) {
    if (streams().isReadableStreamDisturbed(object) || streams().isReadableStreamLocked(object)) {
      throw new TypeError("ReadableStream body is already disturbed or locked");
    }
    return { body: InnerBody.fromStream(object), contentType: null };
  }
  // Not in the standard BodyInit union, but Node and Deno accept async
  // iterables of Uint8Array (e.g. Node-style streams, async generators).
  return { body: InnerBody.fromStream(streams().ReadableStreamFrom(object[_asyncIterable])), contentType: null };
}

// ---- the Body mixin ------------------------------------------------------------

const _body = Symbol("[[body]]");
const _headers = Symbol("[[headers]]");

function mimeTypeOf(obj) {
  const headers = obj[_headers];
  if (headers === null || headers === undefined) return null;
  const values = listGetDecodeSplit(headerListFromHeaders(headers), "content-type");
  if (values === null) return null;
  // "extract a MIME type" (Fetch section 3.5).
  let charset = null;
  let currentEssence = null;
  let mimeType = null;
  for (let i = 0; i < values.length; i++) {
    const temp = parseMimeType(values[i]);
    if (temp === null || essence(temp) === "*/*") continue;
    mimeType = temp;
    const e = essence(mimeType);
    if (e !== currentEssence) {
      charset = null;
      const c = mimeType.parameters.get("charset");
      if (c !== undefined) charset = c;
      currentEssence = e;
    } else if (!mimeType.parameters.has("charset") && charset !== null) {
      mimeType.parameters.set("charset", charset);
    }
  }
  return mimeType;
}

async function consumeBody(obj) {
  const body = obj[_body];
  if (body === null) return new Uint8Array(0);
  if (body.isUnusable()) {
    throw new TypeError("Body is unusable: it has already been read (or is locked)");
  }
  return await body.consume();
}

function mixinBody(prototype, brandPrototype, interfaceName) {
  const check = (self) => webidl.assertBranded(self, brandPrototype);
  const methods = {
    get body() {
      check(this);
      const body = this[_body];
      return body === null ? null : body.getStream();
    },
    get bodyUsed() {
      check(this);
      const body = this[_body];
      return body !== null && body.isUsed();
    },
    async arrayBuffer() {
      check(this);
      return toArrayBuffer(await consumeBody(this));
    },
    async blob() {
      check(this);
      const bytes = await consumeBody(this);
      const mime = mimeTypeOf(this);
      return makeBlob([bytes], mime === null ? "" : serializeMimeType(mime));
    },
    async bytes() {
      check(this);
      const bytes = await consumeBody(this);
      return bytes;
    },
    async formData() {
      check(this);
      const bytes = await consumeBody(this);
      const mime = mimeTypeOf(this);
      if (mime !== null) {
        const e = essence(mime);
        if (e === "multipart/form-data") {
          const boundary = mime.parameters.get("boundary");
          if (boundary === undefined) {
            throw new TypeError("Missing boundary parameter in multipart/form-data Content-Type");
          }
          return parseMultipart(bytes, boundary);
        }
        if (e === "application/x-www-form-urlencoded") {
          const fd = new FormData();
          const pairs = parseUrlEncoded(bytes);
          for (let i = 0; i < pairs.length; i++) {
            ArrayPrototypePush(fd[_entries], [pairs[i][0], pairs[i][1]]);
          }
          return fd;
        }
      }
      throw new TypeError(
        `${interfaceName}.formData(): Content-Type is not multipart/form-data or application/x-www-form-urlencoded`,
      );
    },
    async json() {
      check(this);
      const bytes = await consumeBody(this);
      return JSONParse(core.decode(bytes));
    },
    async text() {
      check(this);
      const bytes = await consumeBody(this);
      return core.decode(bytes);
    },
  };
  const props = {};
  const names = ["body", "bodyUsed"];
  for (let i = 0; i < names.length; i++) {
    const d = ObjectGetOwnPropertyDescriptor(methods, names[i]);
    props[names[i]] = { __proto__: null, get: d.get, enumerable: true, configurable: true };
  }
  const fns = ["arrayBuffer", "blob", "bytes", "formData", "json", "text"];
  for (let i = 0; i < fns.length; i++) {
    props[fns[i]] = {
      __proto__: null,
      value: methods[fns[i]],
      writable: true,
      enumerable: true,
      configurable: true,
    };
  }
  ObjectDefineProperties(prototype, props);
}

// ---- FormData ------------------------------------------------------------------

const _entries = Symbol("[[entries]]");

/** "create an entry": strings stay strings, Blobs become Files. */
function makeEntry(name, value, filename) {
  if (isBlob(value)) {
    if (!isFile(value) || filename !== undefined) {
      const type = BlobPrototypeGetType(value);
      value = makeFile([value], filename !== undefined ? filename : isFile(value) ? FilePrototypeGetName(value) : "blob", type);
    }
  }
  return [name, value];
}

class FormData {
  [_entries] = [];

  constructor(form = undefined) {
    if (form !== undefined) {
      throw new TypeError("Failed to construct 'FormData': HTML forms are not supported");
    }
    this[webidl.brand] = webidl.brand;
  }

  append(name, valueOrBlob, filename = undefined) {
    webidl.assertBranded(this, FormDataPrototype);
    const prefix = "Failed to execute 'append' on 'FormData'";
    webidl.requiredArguments(arguments.length, 2, prefix);
    ArrayPrototypePush(this[_entries], convertEntryArgs(prefix, arguments.length, name, valueOrBlob, filename));
  }

  delete(name) {
    webidl.assertBranded(this, FormDataPrototype);
    const prefix = "Failed to execute 'delete' on 'FormData'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    name = webidl.converters.USVString(name, prefix, "Argument 1");
    const list = this[_entries];
    const kept = [];
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== name) ArrayPrototypePush(kept, list[i]);
    }
    this[_entries] = kept;
  }

  get(name) {
    webidl.assertBranded(this, FormDataPrototype);
    const prefix = "Failed to execute 'get' on 'FormData'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    name = webidl.converters.USVString(name, prefix, "Argument 1");
    const list = this[_entries];
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name) return list[i][1];
    }
    return null;
  }

  getAll(name) {
    webidl.assertBranded(this, FormDataPrototype);
    const prefix = "Failed to execute 'getAll' on 'FormData'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    name = webidl.converters.USVString(name, prefix, "Argument 1");
    const out = [];
    const list = this[_entries];
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name) ArrayPrototypePush(out, list[i][1]);
    }
    return out;
  }

  has(name) {
    webidl.assertBranded(this, FormDataPrototype);
    const prefix = "Failed to execute 'has' on 'FormData'";
    webidl.requiredArguments(arguments.length, 1, prefix);
    name = webidl.converters.USVString(name, prefix, "Argument 1");
    const list = this[_entries];
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name) return true;
    }
    return false;
  }

  set(name, valueOrBlob, filename = undefined) {
    webidl.assertBranded(this, FormDataPrototype);
    const prefix = "Failed to execute 'set' on 'FormData'";
    webidl.requiredArguments(arguments.length, 2, prefix);
    const entry = convertEntryArgs(prefix, arguments.length, name, valueOrBlob, filename);
    const list = this[_entries];
    const out = [];
    let replaced = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === entry[0]) {
        if (!replaced) {
          ArrayPrototypePush(out, entry);
          replaced = true;
        }
      } else {
        ArrayPrototypePush(out, list[i]);
      }
    }
    if (!replaced) ArrayPrototypePush(out, entry);
    this[_entries] = out;
  }

  [SymbolFor("Deno.privateCustomInspect")](inspect, inspectOptions) {
    return `FormData ${inspect(this[_entries], inspectOptions)}`;
  }
}

function convertEntryArgs(prefix, argc, name, value, filename) {
  name = webidl.converters.USVString(name, prefix, "Argument 1");
  if (isBlob(value)) {
    if (filename !== undefined) filename = webidl.converters.USVString(filename, prefix, "Argument 3");
    return makeEntry(name, value, filename);
  }
  if (argc > 2 && filename !== undefined) {
    throw new TypeError(`${prefix}: parameter 2 is not of type 'Blob'`);
  }
  return [name, webidl.converters.USVString(value, prefix, "Argument 2")];
}

webidl.mixinPairIterable("FormData", FormData, _entries, 0, 1);
webidl.configureInterface(FormData);
const FormDataPrototype = FormData.prototype;

function isFormData(v) {
  return ObjectPrototypeIsPrototypeOf(FormDataPrototype, v) && v[webidl.brand] === webidl.brand;
}

/** Escape a name / filename for a Content-Disposition header (HTML spec). */
function escapeDispositionValue(s) {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c === 0x0a) out += "%0A";
    else if (c === 0x0d) out += "%0D";
    else if (c === 0x22) out += "%22";
    else out += s[i];
  }
  return out;
}

/** Convert lone CR and lone LF to CRLF (multipart string values). */
function normalizeNewlines(s) {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c === 0x0d) {
      out += "\r\n";
      if (i + 1 < s.length && StringPrototypeCharCodeAt(s, i + 1) === 0x0a) i++;
    } else if (c === 0x0a) {
      out += "\r\n";
    } else {
      out += s[i];
    }
  }
  return out;
}

function randomBoundary() {
  let s = "";
  for (let i = 0; i < 3; i++) {
    // The op, not primordials' Math.random: V8's own generator starts every step process forked
    // from one worker in the same state, so each step's first boundary would be the same.
    s += StringPrototypeSlice(NumberPrototypeToString(core.ops.op_codestep_math_random(), 16), 2);
  }
  return "----codestep-formdata-" + StringPrototypeSlice(s, 0, 32);
}

/** multipart/form-data encoding of a FormData, as a Blob (so files are not copied). */
function encodeFormData(formData) {
  const boundary = randomBoundary();
  const parts = [];
  const list = formData[_entries];
  for (let i = 0; i < list.length; i++) {
    const name = list[i][0];
    const value = list[i][1];
    let head = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" +
      escapeDispositionValue(normalizeNewlines(name)) + "\"";
    if (typeof value === "string") {
      ArrayPrototypePush(parts, head + "\r\n\r\n" + normalizeNewlines(value) + "\r\n");
    } else {
      const type = BlobPrototypeGetType(value);
      head += "; filename=\"" + escapeDispositionValue(FilePrototypeGetName(value)) + "\"\r\n" +
        "Content-Type: " + (type === "" ? "application/octet-stream" : type) + "\r\n\r\n";
      ArrayPrototypePush(parts, head);
      ArrayPrototypePush(parts, value);
      ArrayPrototypePush(parts, "\r\n");
    }
  }
  ArrayPrototypePush(parts, "--" + boundary + "--\r\n");
  return {
    blob: makeBlob(parts, ""),
    contentType: "multipart/form-data; boundary=" + boundary,
  };
}

function indexOfBytes(hay, needle, from) {
  const n = TypedArrayPrototypeGetLength(needle);
  const end = TypedArrayPrototypeGetLength(hay) - n;
  const first = needle[0];
  let i = from;
  while (i <= end) {
    // Jump to the next candidate first byte (native scan), then compare the rest.
    i = TypedArrayPrototypeIndexOf(hay, first, i);
    if (i === -1 || i > end) return -1;
    let j = 1;
    while (j < n && hay[i + j] === needle[j]) j++;
    if (j === n) return i;
    i++;
  }
  return -1;
}

function latin1(bytes, start, end) {
  let s = "";
  for (let i = start; i < end; i++) s += primordials.StringFromCharCode(bytes[i]);
  return s;
}

/** Parse a `name="..."`-style parameter out of a Content-Disposition value. */
function dispositionParam(value, param) {
  const lower = byteLowerCase(value);
  let i = 0;
  while (true) {
    const at = primordials.StringPrototypeIndexOf(lower, param + "=", i);
    if (at === -1) return null;
    // Must be at a parameter boundary (after ';' and optional whitespace).
    let k = at - 1;
    while (k >= 0 && (lower[k] === " " || lower[k] === "\t")) k--;
    if (k >= 0 && lower[k] !== ";") {
      i = at + 1;
      continue;
    }
    let p = at + param.length + 1;
    if (value[p] === "\"") {
      p++;
      let out = "";
      while (p < value.length && value[p] !== "\"") {
        if (value[p] === "\\" && p + 1 < value.length) p++;
        out += value[p];
        p++;
      }
      return out;
    }
    let out = "";
    while (p < value.length && value[p] !== ";") out += value[p++];
    return primordials.StringPrototypeTrim(out);
  }
}

/** Percent-decode %0A, %0D, %22 as written by escapeDispositionValue. */
function unescapeDisposition(s) {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "%" && i + 2 < s.length) {
      const code = StringPrototypeSlice(s, i + 1, i + 3);
      if (code === "0A" || code === "0a") {
        out += "\n";
        i += 2;
        continue;
      }
      if (code === "0D" || code === "0d") {
        out += "\r";
        i += 2;
        continue;
      }
      if (code === "22") {
        out += "\"";
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

/** Split on CRLF without String.prototype.split (which consults Symbol.split). */
function splitLines(s) {
  const out = [];
  let start = 0;
  while (true) {
    const at = primordials.StringPrototypeIndexOf(s, "\r\n", start);
    if (at === -1) {
      ArrayPrototypePush(out, StringPrototypeSlice(s, start));
      return out;
    }
    ArrayPrototypePush(out, StringPrototypeSlice(s, start, at));
    start = at + 2;
  }
}

// Caps on one part's header section, as Deno has: a body cannot make the parser build huge
// strings or header lists out of what should be a few short lines.
const MAX_PART_HEADER_BYTES = 16 * 1024;
const MAX_PART_HEADERS = 128;

function isLineStart(bytes, at) {
  return at === 0 || (at >= 2 && bytes[at - 2] === 0x0d && bytes[at - 1] === 0x0a);
}

/**
 * Whether a whole delimiter line starts at `at`: "--" boundary, then "--" for the close
 * delimiter, then transport padding (spaces, tabs), then CRLF (or, for the close delimiter, the
 * end of the body). Returns { close, next } (`next`: the first byte after the line), or null.
 */
function matchDelimiterLine(bytes, at, delim) {
  const total = TypedArrayPrototypeGetLength(bytes);
  const n = TypedArrayPrototypeGetLength(delim);
  if (at + n > total) return null;
  for (let i = 0; i < n; i++) {
    if (bytes[at + i] !== delim[i]) return null;
  }
  let p = at + n;
  let close = false;
  if (p + 1 < total && bytes[p] === 0x2d && bytes[p + 1] === 0x2d) {
    close = true;
    p += 2;
  }
  while (p < total && (bytes[p] === 0x20 || bytes[p] === 0x09)) p++;
  if (close && p === total) return { __proto__: null, close, next: p };
  if (p + 1 < total && bytes[p] === 0x0d && bytes[p + 1] === 0x0a) return { __proto__: null, close, next: p + 2 };
  return null;
}

/**
 * multipart/form-data parser (RFC 7578, RFC 2046 section 5.1.1). A part ends only at a whole
 * delimiter line (CRLF, "--" boundary, optional "--", padding, CRLF or end); the boundary text
 * anywhere else is content. The preamble and epilogue are ignored. A part without a `name`
 * parameter is skipped (as Deno does); a header section over the caps above is a TypeError.
 */
function parseMultipart(bytes, boundary) {
  const fd = new FormData();
  const delim = core.encode("--" + boundary);
  const total = TypedArrayPrototypeGetLength(bytes);
  const crlfcrlf = core.encode("\r\n\r\n");
  const fail = () => new TypeError("Failed to parse body as FormData: malformed multipart body");

  // The first delimiter line: at the start of the body or of a line.
  let line = null;
  for (let at = indexOfBytes(bytes, delim, 0); at !== -1; at = indexOfBytes(bytes, delim, at + 1)) {
    if (!isLineStart(bytes, at)) continue;
    line = matchDelimiterLine(bytes, at, delim);
    if (line !== null) break;
  }
  if (line === null) throw fail();

  while (!line.close) {
    const pos = line.next;
    // Header section: lines up to an empty line. A part may have none.
    let headersEnd;
    let bodyStart;
    if (pos + 1 < total && bytes[pos] === 0x0d && bytes[pos + 1] === 0x0a) {
      headersEnd = pos;
      bodyStart = pos + 2;
    } else {
      headersEnd = indexOfBytes(bytes, crlfcrlf, pos);
      if (headersEnd === -1) {
        if (total - pos > MAX_PART_HEADER_BYTES) throw new TypeError("Failed to parse body as FormData: part headers are too large");
        throw fail();
      }
      bodyStart = headersEnd + 4;
    }
    if (headersEnd - pos > MAX_PART_HEADER_BYTES) {
      throw new TypeError("Failed to parse body as FormData: part headers are too large");
    }
    let name = null;
    let filename = null;
    let contentType = null;
    const lines = splitLines(latin1(bytes, pos, headersEnd));
    let count = 0;
    for (let i = 0; i < lines.length; i++) {
      const headerLine = lines[i];
      const colon = primordials.StringPrototypeIndexOf(headerLine, ":");
      if (colon === -1) continue;
      if (++count > MAX_PART_HEADERS) {
        throw new TypeError("Failed to parse body as FormData: a part has too many headers");
      }
      const hname = byteLowerCase(primordials.StringPrototypeTrim(StringPrototypeSlice(headerLine, 0, colon)));
      const hvalue = primordials.StringPrototypeTrim(StringPrototypeSlice(headerLine, colon + 1));
      if (hname === "content-disposition") {
        name = dispositionParam(hvalue, "name");
        filename = dispositionParam(hvalue, "filename");
      } else if (hname === "content-type") {
        contentType = hvalue;
      }
    }

    // The content runs to the CRLF that starts the next whole delimiter line.
    let next = null;
    let bodyEnd = -1;
    for (let at = indexOfBytes(bytes, delim, bodyStart); at !== -1; at = indexOfBytes(bytes, delim, at + 1)) {
      if (at - 2 < bodyStart || !isLineStart(bytes, at)) continue;
      next = matchDelimiterLine(bytes, at, delim);
      if (next !== null) {
        bodyEnd = at - 2;
        break;
      }
    }
    if (next === null) throw fail();
    line = next;
    if (name === null) continue;
    const content = copyRange(bytes, bodyStart, bodyEnd);
    // Header bytes were read as latin1; names and filenames are UTF-8 on the wire.
    name = core.decode(latin1ToBytes(unescapeDisposition(name)));
    if (filename !== null) {
      filename = core.decode(latin1ToBytes(unescapeDisposition(filename)));
      const file = makeFile([content], filename, contentType === null ? "text/plain" : contentType);
      ArrayPrototypePush(fd[_entries], [name, file]);
    } else {
      ArrayPrototypePush(fd[_entries], [name, core.decode(content)]);
    }
  }
  return fd;
}

function latin1ToBytes(s) {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = StringPrototypeCharCodeAt(s, i) & 0xff;
  return out;
}

export {
  _body,
  _headers,
  consumeBody,
  convertBodyInit,
  extractBody,
  FormData,
  FormDataPrototype,
  InnerBody,
  isFormData,
  isStreamBodyInit,
  makeBlob,
  mimeTypeOf,
  mixinBody,
  STRING_BODY_TYPE,
  stringBodyBytes,
  toArrayBuffer,
};
