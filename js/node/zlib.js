// node:zlib - gzip, deflate (zlib), deflateRaw and their inverses, as sync calls, callbacks and streams,
// over one Rust op (flate2). Streams compress or decompress when their input ends, not chunk by chunk.
// Brotli is not available.
(function () {
const { core } = __bootstrap;
const { op_codestep_zlib } = core.ops;
const { Buffer } = core.loadExtScript("ext:codestep/node/buffer.js");
const { Transform } = core.loadExtScript("ext:codestep/node/stream.js");

const MODES = { gzip: 0, gunzip: 1, deflate: 2, inflate: 3, deflateRaw: 4, inflateRaw: 5, unzip: 6 };

function toBytes(data) {
  if (typeof data === "string") return Buffer.from(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const e = new TypeError('The "buffer" argument must be of type string or an instance of Buffer, TypedArray, DataView, or ArrayBuffer.');
  e.code = "ERR_INVALID_ARG_TYPE";
  throw e;
}

function run(mode, data, opts) {
  const level = opts?.level ?? -1;
  try {
    const out = op_codestep_zlib(MODES[mode], toBytes(data), level);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    const err = new Error(e.message);
    err.code = mode === "gzip" || mode === "deflate" || mode === "deflateRaw" ? "ERR_ZLIB" : "Z_DATA_ERROR";
    err.errno = -3;
    throw err;
  }
}

class ZlibStream extends Transform {
  constructor(mode, opts) {
    super(opts);
    this._mode = mode;
    this._opts = opts;
    this._chunks = [];
    this.bytesWritten = 0;
  }
  _transform(chunk, _enc, cb) {
    const b = toBytes(chunk);
    this.bytesWritten += b.length;
    this._chunks.push(b);
    cb();
  }
  _flush(cb) {
    try {
      cb(null, run(this._mode, Buffer.concat(this._chunks), this._opts));
    } catch (e) {
      cb(e);
    }
  }
  close(cb) {
    this.destroy();
    if (cb) queueMicrotask(cb);
  }
  flush(_kind, cb) {
    if (typeof _kind === "function") cb = _kind;
    if (cb) queueMicrotask(cb);
  }
}

const zlib = {
  constants: {
    Z_NO_FLUSH: 0, Z_PARTIAL_FLUSH: 1, Z_SYNC_FLUSH: 2, Z_FULL_FLUSH: 3, Z_FINISH: 4, Z_BLOCK: 5,
    Z_OK: 0, Z_STREAM_END: 1, Z_NEED_DICT: 2, Z_ERRNO: -1, Z_STREAM_ERROR: -2, Z_DATA_ERROR: -3, Z_BUF_ERROR: -5,
    Z_NO_COMPRESSION: 0, Z_BEST_SPEED: 1, Z_BEST_COMPRESSION: 9, Z_DEFAULT_COMPRESSION: -1,
    Z_DEFAULT_STRATEGY: 0, Z_DEFAULT_WINDOWBITS: 15, Z_DEFAULT_MEMLEVEL: 8, Z_DEFAULT_CHUNK: 16384,
  },
};
for (const mode of Object.keys(MODES)) {
  const cap = mode[0].toUpperCase() + mode.slice(1);
  zlib[`${mode}Sync`] = (data, opts) => run(mode, data, opts);
  zlib[mode] = (data, opts, cb) => {
    if (typeof opts === "function") {
      cb = opts;
      opts = undefined;
    }
    let result;
    let error = null;
    try {
      result = run(mode, data, opts);
    } catch (e) {
      error = e;
    }
    queueMicrotask(() => cb(error, result));
  };
  zlib[cap] = class extends ZlibStream {
    constructor(opts) {
      super(mode, opts);
    }
  };
  zlib[`create${cap}`] = (opts) => new zlib[cap](opts);
}
Object.assign(zlib, zlib.constants);
for (const name of ["brotliCompress", "brotliDecompress", "brotliCompressSync", "brotliDecompressSync", "createBrotliCompress", "createBrotliDecompress"]) {
  zlib[name] = () => {
    throw new Error(`zlib.${name} is not available in codestep: only gzip and deflate are`);
  };
}
zlib.crc32 = (data, value = 0) => {
  const bytes = toBytes(data);
  let c = ~value >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    c ^= bytes[i];
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
};
zlib.default = zlib;
return zlib;
})();
