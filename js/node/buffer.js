// node:buffer - Buffer as a Uint8Array subclass, with Node's encodings (utf8, hex, base64, base64url,
// latin1/binary, ascii, utf16le/ucs2), reads and writes of numbers, and the statics.
(function () {
const { core, primordials } = __bootstrap;
const {
  ArrayBufferIsView,
  ArrayIsArray,
  BigInt,
  DataView,
  Error,
  MathFloor,
  MathTrunc,
  MathMin,
  MathMax,
  NumberIsInteger,
  NumberIsNaN,
  ObjectDefineProperty,
  ObjectSetPrototypeOf,
  RangeError,
  String,
  StringFromCharCode,
  StringPrototypeCharCodeAt,
  StringPrototypeToLowerCase,
  Symbol,
  SymbolFor,
  SymbolToPrimitive,
  TypeError,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeSet,
  TypedArrayPrototypeSubarray,
  TypedArrayPrototypeFill,
  Uint8Array,
} = primordials;

const kMaxLength = 2 ** 32;

class FastBuffer extends Uint8Array {
  // deno-lint-ignore constructor-super
  constructor(a, b, c) {
    super(a, b, c);
  }
}

function Buffer(arg, encodingOrOffset, length) {
  if (typeof arg === "number") {
    if (typeof encodingOrOffset === "string") {
      throw new TypeError('The "string" argument must be of type string. Received type number');
    }
    return Buffer.alloc(arg);
  }
  return Buffer.from(arg, encodingOrOffset, length);
}
Buffer.prototype = FastBuffer.prototype;
ObjectDefineProperty(FastBuffer.prototype, "constructor", { value: Buffer, writable: true, configurable: true });
ObjectSetPrototypeOf(Buffer, Uint8Array);

function normalizeEncoding(enc) {
  if (enc === undefined || enc === null || enc === "utf8" || enc === "utf-8") return "utf8";
  switch (StringPrototypeToLowerCase(`${enc}`)) {
    case "utf8":
    case "utf-8":
      return "utf8";
    case "hex":
      return "hex";
    case "base64":
      return "base64";
    case "base64url":
      return "base64url";
    case "latin1":
    case "binary":
      return "latin1";
    case "ascii":
      return "ascii";
    case "ucs2":
    case "ucs-2":
    case "utf16le":
    case "utf-16le":
      return "utf16le";
    default:
      return undefined;
  }
}

function encodingOrThrow(enc) {
  const e = normalizeEncoding(enc);
  if (e === undefined) {
    const err = new TypeError(`Unknown encoding: ${enc}`);
    err.code = "ERR_UNKNOWN_ENCODING";
    throw err;
  }
  return e;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64_LOOKUP = new Uint8Array(256).fill(255);
for (let i = 0; i < 64; i++) {
  B64_LOOKUP[StringPrototypeCharCodeAt(B64, i)] = i;
}
B64_LOOKUP[45] = 62; // -
B64_LOOKUP[95] = 63; // _

function base64Encode(bytes, alphabet, pad) {
  let out = "";
  let chunk = "";
  const n = bytes.length;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    chunk += alphabet[v >> 18] + alphabet[(v >> 12) & 63] + alphabet[(v >> 6) & 63] + alphabet[v & 63];
    if (chunk.length > 8192) {
      out += chunk;
      chunk = "";
    }
  }
  if (i < n) {
    const v = (bytes[i] << 16) | ((i + 1 < n ? bytes[i + 1] : 0) << 8);
    chunk += alphabet[v >> 18] + alphabet[(v >> 12) & 63];
    if (i + 1 < n) chunk += alphabet[(v >> 6) & 63];
    else if (pad) chunk += "=";
    if (pad) chunk += "=";
  }
  return out + chunk;
}

// Lenient, as Node is: whitespace and invalid characters are skipped, either alphabet is accepted, and
// decoding stops at the first `=`.
function base64Decode(str) {
  const out = new FastBuffer((str.length * 3) >>> 2);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < str.length; i++) {
    const c = StringPrototypeCharCodeAt(str, i);
    if (c === 61) break;
    const v = c < 256 ? B64_LOOKUP[c] : 255;
    if (v === 255) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return TypedArrayPrototypeSubarray(out, 0, o);
}

const HEX = [];
for (let i = 0; i < 256; i++) HEX[i] = (i < 16 ? "0" : "") + i.toString(16);

function hexDecode(str) {
  const n = str.length >>> 1;
  const out = new FastBuffer(n);
  let o = 0;
  for (; o < n; o++) {
    const hi = hexValue(StringPrototypeCharCodeAt(str, o * 2));
    const lo = hexValue(StringPrototypeCharCodeAt(str, o * 2 + 1));
    if (hi < 0 || lo < 0) break;
    out[o] = (hi << 4) | lo;
  }
  return o === n ? out : TypedArrayPrototypeSubarray(out, 0, o);
}

function hexValue(c) {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function latin1Decode(str, mask) {
  const out = new FastBuffer(str.length);
  for (let i = 0; i < str.length; i++) out[i] = StringPrototypeCharCodeAt(str, i) & mask;
  return out;
}

function utf16Decode(str) {
  const out = new FastBuffer(str.length * 2);
  for (let i = 0; i < str.length; i++) {
    const c = StringPrototypeCharCodeAt(str, i);
    out[i * 2] = c & 0xff;
    out[i * 2 + 1] = c >>> 8;
  }
  return out;
}

function fromBytes(u8) {
  return new FastBuffer(
    TypedArrayPrototypeGetBuffer(u8),
    TypedArrayPrototypeGetByteOffset(u8),
    TypedArrayPrototypeGetByteLength(u8),
  );
}

function fromString(string, encoding) {
  switch (encodingOrThrow(encoding)) {
    case "utf8":
      return fromBytes(core.encode(string));
    case "hex":
      return hexDecode(string);
    case "base64":
    case "base64url":
      return base64Decode(string);
    case "latin1":
      return latin1Decode(string, 0xff);
    case "ascii":
      return latin1Decode(string, 0xff);
    case "utf16le":
      return utf16Decode(string);
  }
}

function bytesToString(bytes, encoding) {
  encoding = encodingOrThrow(encoding);
  switch (encoding) {
    case "utf8":
      return bytes.length === 0 ? "" : core.decode(bytes);
    case "hex": {
      let s = "";
      for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
      return s;
    }
    case "base64":
      return base64Encode(bytes, B64, true);
    case "base64url":
      return base64Encode(bytes, B64URL, false);
    case "latin1":
    case "ascii": {
      const mask = encoding === "ascii" ? 0x7f : 0xff;
      let s = "";
      for (let i = 0; i < bytes.length; i += 4096) {
        const end = MathMin(i + 4096, bytes.length);
        const codes = [];
        for (let j = i; j < end; j++) codes.push(bytes[j] & mask);
        s += StringFromCharCode(...codes);
      }
      return s;
    }
    case "utf16le": {
      let s = "";
      for (let i = 0; i + 1 < bytes.length; i += 2) s += StringFromCharCode(bytes[i] | (bytes[i + 1] << 8));
      return s;
    }
  }
}

function validateSize(size) {
  if (typeof size !== "number") {
    throw new TypeError(`The "size" argument must be of type number. Received type ${typeof size}`);
  }
  if (!(size >= 0 && size <= kMaxLength) || NumberIsNaN(size)) {
    const err = new RangeError(`The value of "size" is out of range. It must be >= 0 && <= ${kMaxLength}. Received ${size}`);
    err.code = "ERR_OUT_OF_RANGE";
    throw err;
  }
}

Buffer.from = function from(value, encodingOrOffset, length) {
  if (typeof value === "string") return fromString(value, encodingOrOffset);
  if (typeof value === "object" && value !== null) {
    if (ArrayBufferIsView(value)) {
      const src = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      const out = new FastBuffer(src.length);
      TypedArrayPrototypeSet(out, src);
      return out;
    }
    if (value instanceof ArrayBuffer || (typeof SharedArrayBuffer !== "undefined" && value instanceof SharedArrayBuffer)) {
      const offset = encodingOrOffset === undefined ? 0 : +encodingOrOffset || 0;
      const len = length === undefined ? value.byteLength - offset : +length || 0;
      if (offset > value.byteLength) throw new RangeError('"offset" is outside of buffer bounds');
      if (len > value.byteLength - offset) throw new RangeError('"length" is outside of buffer bounds');
      return new FastBuffer(value, offset, len);
    }
    const prim = value[SymbolToPrimitive] ? value[SymbolToPrimitive]("string") : value.valueOf?.();
    if (prim != null && prim !== value && (typeof prim === "string" || typeof prim === "object")) {
      return Buffer.from(prim, encodingOrOffset, length);
    }
    if (value.type === "Buffer" && ArrayIsArray(value.data)) return fromArrayLike(value.data);
    if (typeof value.length === "number" || ArrayIsArray(value)) return fromArrayLike(value);
  }
  throw new TypeError(
    "The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object. Received " +
      (value === null ? "null" : typeof value),
  );
};

function fromArrayLike(a) {
  const n = a.length >>> 0;
  const out = new FastBuffer(n);
  for (let i = 0; i < n; i++) out[i] = a[i];
  return out;
}

Buffer.alloc = function alloc(size, fill, encoding) {
  validateSize(size);
  const buf = new FastBuffer(size);
  if (fill !== undefined && fill !== 0 && size > 0) buf.fill(fill, encoding);
  return buf;
};
Buffer.allocUnsafe = function allocUnsafe(size) {
  validateSize(size);
  return new FastBuffer(size);
};
Buffer.allocUnsafeSlow = Buffer.allocUnsafe;
Buffer.isBuffer = function isBuffer(b) {
  return b instanceof Buffer;
};
Buffer.isEncoding = function isEncoding(enc) {
  return typeof enc === "string" && enc.length !== 0 && normalizeEncoding(enc) !== undefined;
};
Buffer.byteLength = function byteLength(string, encoding) {
  if (typeof string !== "string") {
    if (ArrayBufferIsView(string) || string instanceof ArrayBuffer) return string.byteLength;
    throw new TypeError('The "string" argument must be of type string or an instance of Buffer or ArrayBuffer.');
  }
  switch (normalizeEncoding(encoding) ?? "utf8") {
    case "utf8":
      return utf8Length(string);
    case "hex":
      return string.length >>> 1;
    case "base64":
    case "base64url":
      return base64Decode(string).length;
    case "utf16le":
      return string.length * 2;
    default:
      return string.length;
  }
};

function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = StringPrototypeCharCodeAt(s, i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

Buffer.concat = function concat(list, totalLength) {
  if (!ArrayIsArray(list)) throw new TypeError('The "list" argument must be an instance of Array.');
  if (list.length === 0) return new FastBuffer(0);
  if (totalLength === undefined) {
    totalLength = 0;
    for (let i = 0; i < list.length; i++) totalLength += list[i].length;
  }
  const out = Buffer.alloc(totalLength);
  let pos = 0;
  for (let i = 0; i < list.length; i++) {
    const b = list[i];
    if (!ArrayBufferIsView(b)) {
      throw new TypeError(`The "list[${i}]" argument must be an instance of Buffer or Uint8Array.`);
    }
    const u8 = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    const take = MathMin(u8.length, totalLength - pos);
    if (take <= 0) break;
    TypedArrayPrototypeSet(out, take === u8.length ? u8 : TypedArrayPrototypeSubarray(u8, 0, take), pos);
    pos += take;
  }
  return out;
};
Buffer.compare = function compare(a, b) {
  const n = MathMin(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
};
Buffer.poolSize = 8192;
Buffer.of = function of(...items) {
  return fromArrayLike(items);
};

const proto = FastBuffer.prototype;

proto.toString = function toString(encoding, start, end) {
  if (arguments.length === 0) return bytesToString(this, "utf8");
  // As Node: out-of-range ends are clamped (not wrapped to 32 bits), fractions truncated, NaN is 0.
  const len = this.length;
  start = start === undefined || start < 0 ? 0 : MathTrunc(+start) || 0;
  if (start >= len) return "";
  end = end === undefined || end > len ? len : MathTrunc(+end) || 0;
  if (end <= start) return "";
  const view = start === 0 && end === this.length ? this : TypedArrayPrototypeSubarray(this, start, end);
  return bytesToString(view, encoding ?? "utf8");
};
proto.toLocaleString = proto.toString;
proto.toJSON = function toJSON() {
  const data = new Array(this.length);
  for (let i = 0; i < this.length; i++) data[i] = this[i];
  return { type: "Buffer", data };
};
proto.equals = function equals(other) {
  if (!ArrayBufferIsView(other)) {
    throw new TypeError('The "otherBuffer" argument must be an instance of Buffer or Uint8Array.');
  }
  return Buffer.compare(this, other) === 0;
};
proto.compare = function compare(target, tStart = 0, tEnd = target.length, sStart = 0, sEnd = this.length) {
  return Buffer.compare(
    TypedArrayPrototypeSubarray(this, sStart, sEnd),
    TypedArrayPrototypeSubarray(target, tStart, tEnd),
  );
};
proto.copy = function copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
  sourceEnd = MathMin(sourceEnd, this.length);
  const n = MathMin(sourceEnd - sourceStart, target.length - targetStart);
  if (n <= 0) return 0;
  const src = new Uint8Array(this.buffer, this.byteOffset + sourceStart, n);
  const dst = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
  TypedArrayPrototypeSet(dst, src.slice(), targetStart);
  return n;
};
proto.subarray = function subarray(start, end) {
  const u8 = TypedArrayPrototypeSubarray(this, start, end);
  return fromBytes(u8);
};
// Node's slice shares memory, unlike Uint8Array's.
proto.slice = proto.subarray;
proto.write = function write(string, offset, length, encoding) {
  if (typeof offset === "string") {
    encoding = offset;
    offset = 0;
    length = this.length;
  } else if (typeof length === "string") {
    encoding = length;
    length = this.length - (offset ?? 0);
  }
  offset = offset === undefined ? 0 : offset >>> 0;
  const bytes = fromString(string, encoding);
  const n = MathMin(bytes.length, this.length - offset, length === undefined ? Infinity : length);
  if (n <= 0) return 0;
  TypedArrayPrototypeSet(this, TypedArrayPrototypeSubarray(bytes, 0, n), offset);
  return n;
};
proto.fill = function fill(value, offset, end, encoding) {
  if (typeof offset === "string") {
    encoding = offset;
    offset = 0;
    end = this.length;
  } else if (typeof end === "string") {
    encoding = end;
    end = this.length;
  }
  offset = offset === undefined ? 0 : offset;
  end = end === undefined ? this.length : end;
  if (typeof value === "number" || typeof value === "boolean") {
    TypedArrayPrototypeFill(this, value & 255, offset, end);
    return this;
  }
  const bytes = typeof value === "string" ? fromString(value, encoding) : Buffer.from(value);
  if (bytes.length === 0) {
    TypedArrayPrototypeFill(this, 0, offset, end);
    return this;
  }
  for (let i = offset, j = 0; i < end; i++, j = (j + 1) % bytes.length) this[i] = bytes[j];
  return this;
};
proto.indexOf = function indexOf(value, byteOffset = 0, encoding) {
  if (typeof value === "number") return Uint8Array.prototype.indexOf.call(this, value & 255, byteOffset);
  const needle = typeof value === "string" ? fromString(value, encoding) : value;
  if (byteOffset < 0) byteOffset = MathMax(0, this.length + byteOffset);
  if (needle.length === 0) return MathMin(byteOffset, this.length);
  outer: for (let i = byteOffset; i <= this.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (this[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
};
proto.lastIndexOf = function lastIndexOf(value, byteOffset = this.length, encoding) {
  const needle = typeof value === "number" ? [value & 255] : typeof value === "string" ? fromString(value, encoding) : value;
  outer: for (let i = MathMin(byteOffset, this.length - needle.length); i >= 0; i--) {
    for (let j = 0; j < needle.length; j++) {
      if (this[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
};
proto.includes = function includes(value, byteOffset, encoding) {
  return this.indexOf(value, byteOffset, encoding) !== -1;
};
for (const [name, size] of [["swap16", 2], ["swap32", 4], ["swap64", 8]]) {
  proto[name] = function () {
    if (this.length % size !== 0) throw new RangeError(`Buffer size must be a multiple of ${size * 8}-bits`);
    for (let i = 0; i < this.length; i += size) {
      for (let a = i, b = i + size - 1; a < b; a++, b--) {
        const t = this[a];
        this[a] = this[b];
        this[b] = t;
      }
    }
    return this;
  };
}

function view(buf) {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}
function checkOffset(buf, offset, size) {
  if (offset === undefined) offset = 0;
  if (typeof offset !== "number" || !NumberIsInteger(offset)) {
    const e = new TypeError(`The "offset" argument must be of type number. Received ${typeof offset}`);
    e.code = "ERR_INVALID_ARG_TYPE";
    throw e;
  }
  if (offset < 0 || offset + size > buf.length) {
    const e = new RangeError(`The value of "offset" is out of range. It must be >= 0 and <= ${buf.length - size}. Received ${offset}`);
    e.code = "ERR_OUT_OF_RANGE";
    throw e;
  }
  return offset;
}
const NUMBERS = [
  ["UInt8", 1, "getUint8", "setUint8"],
  ["Int8", 1, "getInt8", "setInt8"],
  ["UInt16", 2, "getUint16", "setUint16"],
  ["Int16", 2, "getInt16", "setInt16"],
  ["UInt32", 4, "getUint32", "setUint32"],
  ["Int32", 4, "getInt32", "setInt32"],
  ["Float", 4, "getFloat32", "setFloat32"],
  ["Double", 8, "getFloat64", "setFloat64"],
  ["BigUInt64", 8, "getBigUint64", "setBigUint64"],
  ["BigInt64", 8, "getBigInt64", "setBigInt64"],
];
for (const [name, size, get, set] of NUMBERS) {
  const ends = size === 1 ? [["", false]] : [["LE", true], ["BE", false]];
  for (const [suffix, little] of ends) {
    const read = function (offset) {
      offset = checkOffset(this, offset, size);
      return view(this)[get](offset, little);
    };
    const write = function (value, offset) {
      offset = checkOffset(this, offset, size);
      const v = view(this);
      if (name === "UInt8" || name === "UInt16" || name === "UInt32") {
        const max = 2 ** (size * 8) - 1;
        if (value < 0 || value > max) {
          const e = new RangeError(`The value of "value" is out of range. It must be >= 0 and <= ${max}. Received ${value}`);
          e.code = "ERR_OUT_OF_RANGE";
          throw e;
        }
      }
      v[set](offset, name.startsWith("Big") ? BigInt(value) : +value, little);
      return offset + size;
    };
    proto[`read${name}${suffix}`] = read;
    proto[`write${name}${suffix}`] = write;
    if (name.startsWith("UInt") || name === "BigUInt64") {
      const alias = name.replace("UInt", "Uint");
      proto[`read${alias}${suffix}`] = read;
      proto[`write${alias}${suffix}`] = write;
    }
  }
}
proto.readUIntBE = function (offset, byteLength) {
  let v = 0;
  for (let i = 0; i < byteLength; i++) v = v * 256 + this[checkOffset(this, offset + i, 1)];
  return v;
};
proto.readUIntLE = function (offset, byteLength) {
  let v = 0;
  for (let i = byteLength - 1; i >= 0; i--) v = v * 256 + this[checkOffset(this, offset + i, 1)];
  return v;
};
proto.readIntBE = function (offset, byteLength) {
  const v = this.readUIntBE(offset, byteLength);
  return v >= 2 ** (8 * byteLength - 1) ? v - 2 ** (8 * byteLength) : v;
};
proto.readIntLE = function (offset, byteLength) {
  const v = this.readUIntLE(offset, byteLength);
  return v >= 2 ** (8 * byteLength - 1) ? v - 2 ** (8 * byteLength) : v;
};
proto.writeUIntBE = function (value, offset, byteLength) {
  for (let i = byteLength - 1; i >= 0; i--) {
    this[checkOffset(this, offset + i, 1)] = value & 255;
    value = MathFloor(value / 256);
  }
  return offset + byteLength;
};
proto.writeUIntLE = function (value, offset, byteLength) {
  for (let i = 0; i < byteLength; i++) {
    this[checkOffset(this, offset + i, 1)] = value & 255;
    value = MathFloor(value / 256);
  }
  return offset + byteLength;
};
proto.readUintBE = proto.readUIntBE;
proto.readUintLE = proto.readUIntLE;
proto.writeUintBE = proto.writeUIntBE;
proto.writeUintLE = proto.writeUIntLE;

const inspectSymbol = SymbolFor("nodejs.util.inspect.custom");
proto[inspectSymbol] = function () {
  let s = "";
  const n = MathMin(this.length, 50);
  for (let i = 0; i < n; i++) s += (i ? " " : "") + HEX[this[i]];
  if (this.length > 50) s += ` ... ${this.length - 50} more bytes`;
  return `<Buffer${s ? " " + s : ""}>`;
};

const constants = { MAX_LENGTH: kMaxLength, MAX_STRING_LENGTH: 2 ** 29 - 24 };
const SlowBuffer = Buffer.allocUnsafeSlow;

function isUtf8(input) {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(input);
    return true;
  } catch {
    return false;
  }
}
function isAscii(input) {
  const u8 = new Uint8Array(input.buffer ?? input, input.byteOffset ?? 0, input.byteLength);
  for (let i = 0; i < u8.length; i++) if (u8[i] > 127) return false;
  return true;
}

return {
  Buffer,
  SlowBuffer,
  kMaxLength,
  constants,
  INSPECT_MAX_BYTES: 50,
  Blob: globalThis.Blob,
  File: globalThis.File,
  atob: globalThis.atob,
  btoa: globalThis.btoa,
  isUtf8,
  isAscii,
  transcode() {
    throw new Error("buffer.transcode is not supported in codestep");
  },
};
})();
