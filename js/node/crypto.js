// node:crypto - createHash (md5, sha1, sha224, sha256, sha384, sha512), createHmac, randomBytes,
// randomUUID, randomInt, timingSafeEqual, createSign/createVerify and sign/verify for RSA (PKCS#1 v1.5)
// and P-256 ECDSA keys in PEM, over Rust ops. `webcrypto` is the global `crypto`.
(function () {
const { core } = __bootstrap;
const { op_codestep_hash, op_codestep_hmac, op_codestep_sign, op_codestep_verify, op_codestep_random_fill } = core.ops;
const { Buffer } = core.loadExtScript("ext:codestep/node/buffer.js");
const { Writable } = core.loadExtScript("ext:codestep/node/stream.js");
// Web Crypto (deno_crypto): `webcrypto`, `subtle`, and async PBKDF2 over `subtle.deriveBits`.
const web = __bootstrap.internals.codestepWebCrypto().crypto;

const HASHES = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

function normalizeHash(alg) {
  let a = `${alg}`.toLowerCase();
  if (a.startsWith("rsa-")) a = a.slice(4);
  if (a === "sha-1") a = "sha1";
  if (a.startsWith("sha-")) a = "sha" + a.slice(4);
  return a;
}

function toBytes(data, encoding, what = "data") {
  if (typeof data === "string") return Buffer.from(data, encoding);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  const e = new TypeError(`The "${what}" argument must be of type string or an instance of Buffer, TypedArray, or DataView. Received ${data === null ? "null" : typeof data}`);
  e.code = "ERR_INVALID_ARG_TYPE";
  throw e;
}

function output(bytes, encoding) {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return encoding === undefined || encoding === "buffer" ? b : b.toString(encoding);
}

function concat(chunks) {
  if (chunks.length === 1) return chunks[0];
  return Buffer.concat(chunks);
}

// Hash and Hmac keep the data until digest(): one op call does the work.
class Hash extends Writable {
  #alg;
  #chunks = [];
  #done = false;
  #key;
  constructor(alg, key) {
    super();
    this.#alg = alg;
    this.#key = key;
  }
  update(data, encoding) {
    if (this.#done) {
      const e = new Error("Digest already called");
      e.code = "ERR_CRYPTO_HASH_FINALIZED";
      throw e;
    }
    this.#chunks.push(Buffer.from(toBytes(data, encoding)));
    return this;
  }
  digest(encoding) {
    if (this.#done) {
      const e = new Error("Digest already called");
      e.code = "ERR_CRYPTO_HASH_FINALIZED";
      throw e;
    }
    this.#done = true;
    const data = concat(this.#chunks);
    const out = this.#key === undefined ? op_codestep_hash(this.#alg, data) : op_codestep_hmac(this.#alg, this.#key, data);
    return output(out, encoding);
  }
  copy() {
    const h = new Hash(this.#alg, this.#key);
    for (const c of this.#chunks) h.update(c);
    return h;
  }
  _write(chunk, enc, cb) {
    this.update(chunk, enc);
    cb();
  }
}

function createHash(alg, _options) {
  const a = normalizeHash(alg);
  if (!HASHES.includes(a)) throw new Error(`Digest method not supported: ${alg}`);
  return new Hash(a);
}

function keyBytes(key) {
  if (key instanceof KeyObject) return key.export();
  return toBytes(key, "utf8", "key");
}

function createHmac(alg, key, _options) {
  const a = normalizeHash(alg);
  if (!HASHES.includes(a)) throw new Error(`Invalid digest: ${alg}`);
  return new Hash(a, Buffer.from(keyBytes(key)));
}

function hash(alg, data, encoding = "hex") {
  return createHash(alg).update(data).digest(encoding);
}

function randomFill(bytes) {
  for (let i = 0; i < bytes.length; i += 65536) {
    op_codestep_random_fill(bytes.subarray(i, Math.min(bytes.length, i + 65536)));
  }
  return bytes;
}

function randomBytes(size, callback) {
  if (typeof size !== "number" || size < 0 || size > 2 ** 31 - 1 || !Number.isInteger(size)) {
    const e = new RangeError(`The value of "size" is out of range. It must be >= 0 && <= ${2 ** 31 - 1}. Received ${size}`);
    e.code = "ERR_OUT_OF_RANGE";
    throw e;
  }
  const b = randomFill(Buffer.alloc(size));
  if (typeof callback === "function") {
    queueMicrotask(() => callback(null, b));
    return;
  }
  return b;
}

function randomFillSync(buf, offset = 0, size) {
  const u8 = new Uint8Array(buf.buffer ?? buf, buf.byteOffset ?? 0, buf.byteLength);
  randomFill(u8.subarray(offset, size === undefined ? undefined : offset + size));
  return buf;
}

function randomInt(min, max, callback) {
  if (max === undefined || typeof max === "function") {
    callback = max;
    max = min;
    min = 0;
  }
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max <= min) {
    throw new RangeError(`The value of "max" is out of range. It must be greater than the value of "min" (${min}). Received ${max}`);
  }
  const range = max - min;
  const limit = 2 ** 48 - (2 ** 48 % range);
  let n;
  do {
    const b = randomFill(new Uint8Array(6));
    n = b[0] * 2 ** 40 + b[1] * 2 ** 32 + b[2] * 2 ** 24 + b[3] * 2 ** 16 + b[4] * 2 ** 8 + b[5];
  } while (n >= limit);
  const v = min + (n % range);
  if (typeof callback === "function") {
    queueMicrotask(() => callback(null, v));
    return;
  }
  return v;
}

function timingSafeEqual(a, b) {
  const x = toBytes(a, undefined, "buf1");
  const y = toBytes(b, undefined, "buf2");
  if (x.length !== y.length) {
    const e = new RangeError("Input buffers must have the same byte length");
    e.code = "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH";
    throw e;
  }
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

// Keys are kept as PEM text; Rust parses them on each use.
class KeyObject {
  #pem;
  #type;
  constructor(type, pem) {
    this.#type = type;
    this.#pem = pem;
  }
  get type() {
    return this.#type;
  }
  get asymmetricKeyType() {
    if (this.#type === "secret") return undefined;
    return /BEGIN EC/.test(this.#pem) ? "ec" : "rsa";
  }
  export(options) {
    if (this.#type === "secret") return Buffer.from(this.#pem);
    if (options?.format === "der") throw new Error("Exporting keys as DER is not supported in codestep");
    return this.#pem;
  }
  equals(other) {
    return other instanceof KeyObject && other.#pem === this.#pem && other.#type === this.#type;
  }
  static from() {
    throw new Error("KeyObject.from(CryptoKey) is not supported in codestep");
  }
}

function pemOf(key, what) {
  if (key instanceof KeyObject) return key.export();
  if (typeof key === "string") return key;
  if (ArrayBuffer.isView(key)) return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("utf8");
  if (key && typeof key === "object" && key.key !== undefined) {
    if (key.format === "jwk") throw new Error("JWK keys are not supported by codestep's node:crypto");
    if (key.passphrase !== undefined) throw new Error("Encrypted private keys are not supported by codestep's node:crypto");
    return pemOf(key.key, what);
  }
  const e = new TypeError(`The "${what}" argument must be a PEM string, a Buffer, a KeyObject or { key }`);
  e.code = "ERR_INVALID_ARG_TYPE";
  throw e;
}

function dsaIeee(key) {
  return key && typeof key === "object" && !(key instanceof KeyObject) && !ArrayBuffer.isView(key) && key.dsaEncoding === "ieee-p1363";
}

function checkPadding(key) {
  if (key && typeof key === "object" && key.padding !== undefined && key.padding !== 1) {
    throw new Error("Only PKCS#1 v1.5 RSA signatures are supported by codestep's node:crypto");
  }
}

function signWith(alg, data, key) {
  checkPadding(key);
  const out = op_codestep_sign(alg, pemOf(key, "key"), data, dsaIeee(key));
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

function verifyWith(alg, data, key, signature) {
  checkPadding(key);
  return op_codestep_verify(alg, pemOf(key, "key"), data, toBytes(signature, undefined, "signature"), dsaIeee(key));
}

// Sign and Verify collect what is written to them, then sign or check it at once.
class Collector extends Writable {
  alg;
  #chunks = [];
  constructor(alg) {
    super();
    this.alg = alg;
  }
  update(data, encoding) {
    this.#chunks.push(Buffer.from(toBytes(data, encoding)));
    return this;
  }
  collected() {
    return concat(this.#chunks);
  }
  _write(chunk, enc, cb) {
    this.update(chunk, enc);
    cb();
  }
}

class Sign extends Collector {
  sign(key, encoding) {
    const sig = signWith(this.alg, this.collected(), key);
    return encoding ? sig.toString(encoding) : sig;
  }
}

class Verify extends Collector {
  verify(key, signature, encoding) {
    const sig = typeof signature === "string" ? Buffer.from(signature, encoding) : signature;
    return verifyWith(this.alg, this.collected(), key, sig);
  }
}

function signAlg(alg) {
  const a = normalizeHash(alg ?? "sha256");
  if (!HASHES.includes(a)) throw new Error(`Invalid digest: ${alg}`);
  return a;
}

function createSign(alg) {
  return new Sign(signAlg(alg));
}
function createVerify(alg) {
  return new Verify(signAlg(alg));
}

function sign(alg, data, key, callback) {
  const sig = signWith(signAlg(alg), toBytes(data), key);
  if (typeof callback === "function") {
    queueMicrotask(() => callback(null, sig));
    return;
  }
  return sig;
}
function verify(alg, data, key, signature, callback) {
  const ok = verifyWith(signAlg(alg), toBytes(data), key, signature);
  if (typeof callback === "function") {
    queueMicrotask(() => callback(null, ok));
    return;
  }
  return ok;
}

function createPrivateKey(key) {
  const pem = pemOf(key, "key");
  if (!/PRIVATE KEY/.test(pem)) throw new TypeError("createPrivateKey needs a PEM private key");
  op_codestep_sign("sha256", pem, new Uint8Array(0), false);
  return new KeyObject("private", pem);
}
function createPublicKey(key) {
  const pem = pemOf(key, "key");
  op_codestep_verify("sha256", pem, new Uint8Array(0), new Uint8Array(0), false);
  return new KeyObject("public", pem);
}
function createSecretKey(key, encoding) {
  return new KeyObject("secret", Buffer.from(toBytes(key, encoding)).toString("latin1"));
}

// PBKDF2 with a callback, as Node has it; the work runs in Rust off the step's thread.
function pbkdf2(password, salt, iterations, keylen, digest, callback) {
  if (typeof digest === "function") {
    const e = new TypeError('The "digest" argument must be of type string. Received function');
    e.code = "ERR_INVALID_ARG_TYPE";
    throw e;
  }
  if (typeof callback !== "function") {
    const e = new TypeError('The "callback" argument must be of type function');
    e.code = "ERR_INVALID_ARG_TYPE";
    throw e;
  }
  const hash = { md5: null, sha1: "SHA-1", sha256: "SHA-256", sha384: "SHA-384", sha512: "SHA-512" }[normalizeHash(digest)];
  if (!hash) {
    const e = new TypeError(`Invalid digest: ${digest}`);
    e.code = "ERR_CRYPTO_INVALID_DIGEST";
    throw e;
  }
  const pw = toBytes(password, undefined, "password");
  const s = toBytes(salt, undefined, "salt");
  web.subtle
    .importKey("raw", pw, "PBKDF2", false, ["deriveBits"])
    .then((key) => web.subtle.deriveBits({ name: "PBKDF2", hash, salt: s, iterations }, key, keylen * 8))
    .then((bits) => callback(null, Buffer.from(bits)), (err) => callback(err));
}

function unsupported(name) {
  return () => {
    throw new Error(`crypto.${name} is not available in codestep`);
  };
}

const crypto = {
  createHash,
  createHmac,
  hash,
  randomBytes,
  pseudoRandomBytes: randomBytes,
  randomFillSync,
  randomFill: (buf, offset, size, cb) => {
    cb = [offset, size, cb].find((x) => typeof x === "function");
    randomFillSync(buf, typeof offset === "number" ? offset : 0, typeof size === "number" ? size : undefined);
    queueMicrotask(() => cb(null, buf));
  },
  randomInt,
  randomUUID: () => web.randomUUID(),
  getRandomValues: (a) => web.getRandomValues(a),
  timingSafeEqual,
  createSign,
  createVerify,
  sign,
  verify,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  KeyObject,
  Hash,
  Hmac: Hash,
  Sign,
  Verify,
  getHashes: () => HASHES.slice(),
  getCiphers: () => [],
  getCurves: () => ["prime256v1"],
  webcrypto: web,
  subtle: web.subtle,
  constants: { RSA_PKCS1_PADDING: 1, RSA_PKCS1_PSS_PADDING: 6 },
  createCipheriv: unsupported("createCipheriv"),
  createDecipheriv: unsupported("createDecipheriv"),
  pbkdf2,
  pbkdf2Sync: unsupported("pbkdf2Sync"),
  scrypt: unsupported("scrypt"),
  scryptSync: unsupported("scryptSync"),
  generateKeyPair: unsupported("generateKeyPair"),
  generateKeyPairSync: unsupported("generateKeyPairSync"),
  publicEncrypt: unsupported("publicEncrypt"),
  privateDecrypt: unsupported("privateDecrypt"),
  createECDH: unsupported("createECDH"),
  createDiffieHellman: unsupported("createDiffieHellman"),
};
crypto.default = crypto;
return crypto;
})();
