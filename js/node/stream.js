// node:stream - Readable, Writable, Duplex, Transform, PassThrough, pipeline and finished: enough of
// Node's streams for the SDKs (flowing and paused reads, backpressure by highWaterMark, object mode,
// async iteration, destroy), plus conversion to and from web streams.
(function () {
const { core } = __bootstrap;
const EventEmitter = core.loadExtScript("ext:codestep/node/events.js").EventEmitter;
const bufferModule = () => core.loadExtScript("ext:codestep/node/buffer.js");

const nextTick = (fn, ...args) => queueMicrotask(() => fn(...args));

function Stream(opts) {
  EventEmitter.call(this, opts);
}
Object.setPrototypeOf(Stream.prototype, EventEmitter.prototype);
Object.setPrototypeOf(Stream, EventEmitter);
Stream.prototype.pipe = function (dest, options) {
  return Readable.prototype.pipe.call(this, dest, options);
};

function toChunk(stream, chunk, encoding) {
  if (stream._objectMode) return chunk;
  if (typeof chunk === "string") {
    if (stream._decodeStrings === false) return chunk;
    return bufferModule().Buffer.from(chunk, encoding);
  }
  if (chunk instanceof Uint8Array && !bufferModule().Buffer.isBuffer(chunk)) {
    return bufferModule().Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  return chunk;
}

function chunkLength(stream, chunk) {
  return stream._objectMode ? 1 : chunk?.length ?? 0;
}

// ---------------------------------------------------------------- Readable
function Readable(options = {}) {
  if (!(this instanceof Readable)) return new Readable(options);
  Stream.call(this, options);
  this._objectMode = !!(options.objectMode || options.readableObjectMode);
  this._readableState = {
    buffer: [],
    length: 0,
    highWaterMark: options.highWaterMark ?? options.readableHighWaterMark ?? (this._objectMode ? 16 : 16384),
    flowing: null,
    ended: false,
    endEmitted: false,
    reading: false,
    destroyed: false,
    errored: null,
    encoding: null,
    decoder: null,
    pipes: [],
    closed: false,
  };
  this.readable = true;
  if (typeof options.read === "function") this._read = options.read;
  if (typeof options.destroy === "function") this._destroy = options.destroy;
  if (options.encoding) this.setEncoding(options.encoding);
  if (options.signal) {
    options.signal.addEventListener("abort", () => this.destroy(options.signal.reason), { once: true });
  }
}
Object.setPrototypeOf(Readable.prototype, Stream.prototype);
Object.setPrototypeOf(Readable, Stream);

Object.defineProperties(Readable.prototype, {
  readableEnded: { get() { return this._readableState.endEmitted; } },
  readableFlowing: { get() { return this._readableState.flowing; }, set(v) { this._readableState.flowing = v; } },
  readableLength: { get() { return this._readableState.length; } },
  readableHighWaterMark: { get() { return this._readableState.highWaterMark; } },
  readableObjectMode: { get() { return this._objectMode; } },
  readableEncoding: { get() { return this._readableState.encoding; } },
  destroyed: {
    get() { return (this._readableState ?? this._writableState)?.destroyed ?? false; },
    set(v) { const s = this._readableState ?? this._writableState; if (s) s.destroyed = v; },
  },
  closed: { get() { return (this._readableState ?? this._writableState)?.closed ?? false; } },
  errored: { get() { return (this._readableState ?? this._writableState)?.errored ?? null; } },
});

Readable.prototype._read = function () {
  throw new Error("The _read() method is not implemented");
};

Readable.prototype.push = function (chunk, encoding) {
  const state = this._readableState;
  if (state.destroyed) return false;
  if (chunk === null) {
    state.ended = true;
    state.reading = false;
    if (state.length === 0) endReadable(this);
    else flow(this);
    return false;
  }
  if (state.ended) {
    this.destroy(new Error("stream.push() after EOF"));
    return false;
  }
  chunk = toChunk(this, chunk, encoding);
  if (!this._objectMode && chunk.length === 0) {
    state.reading = false;
    return state.length < state.highWaterMark;
  }
  if (state.decoder) chunk = state.decoder.write(chunk);
  state.reading = false;
  if (state.flowing && state.length === 0 && !state.sync) {
    this.emit("data", chunk);
  } else {
    state.buffer.push(chunk);
    state.length += chunkLength(this, chunk);
    if (state.flowing) flow(this);
    else this.emit("readable");
  }
  maybeReadMore(this);
  return state.length < state.highWaterMark;
};
Readable.prototype.unshift = function (chunk) {
  const state = this._readableState;
  chunk = toChunk(this, chunk);
  state.buffer.unshift(chunk);
  state.length += chunkLength(this, chunk);
};

function maybeReadMore(stream) {
  const state = stream._readableState;
  if (state.readScheduled) return;
  state.readScheduled = true;
  nextTick(() => {
    state.readScheduled = false;
    while (!state.reading && !state.ended && !state.destroyed && state.length < state.highWaterMark) {
      const before = state.length;
      callRead(stream);
      if (state.length === before) break;
    }
  });
}

function callRead(stream) {
  const state = stream._readableState;
  if (state.reading || state.ended || state.destroyed) return;
  state.reading = true;
  state.sync = true;
  try {
    stream._read(state.highWaterMark);
  } catch (e) {
    stream.destroy(e);
  }
  state.sync = false;
}

function flow(stream) {
  const state = stream._readableState;
  if (state.flowScheduled) return;
  state.flowScheduled = true;
  nextTick(() => {
    state.flowScheduled = false;
    while (state.flowing && state.buffer.length && !state.destroyed) {
      const chunk = state.buffer.shift();
      state.length -= chunkLength(stream, chunk);
      stream.emit("data", chunk);
    }
    if (state.ended && state.length === 0) endReadable(stream);
    else if (state.flowing) maybeReadMore(stream);
  });
}

function endReadable(stream) {
  const state = stream._readableState;
  if (state.endEmitted || state.endScheduled) return;
  state.endScheduled = true;
  nextTick(() => {
    if (state.endEmitted || state.destroyed || state.length !== 0) {
      state.endScheduled = false;
      return;
    }
    if (state.decoder) {
      const rest = state.decoder.end();
      if (rest) stream.emit("data", rest);
    }
    state.endEmitted = true;
    stream.readable = false;
    stream.emit("end");
    if (stream._writableState === undefined || stream._writableState.finished) {
      if (stream._autoDestroy !== false) stream.destroy();
    }
  });
}

Readable.prototype.read = function (n) {
  const state = this._readableState;
  if (state.length === 0) {
    if (state.ended) endReadable(this);
    else callRead(this);
    return null;
  }
  let chunk;
  if (this._objectMode || n === undefined || typeof state.buffer[0] === "string") {
    if (n === undefined && !this._objectMode && state.buffer.length > 1) {
      chunk = typeof state.buffer[0] === "string" ? state.buffer.join("") : bufferModule().Buffer.concat(state.buffer);
      state.buffer = [];
      state.length = 0;
    } else {
      chunk = state.buffer.shift();
      state.length -= chunkLength(this, chunk);
    }
  } else {
    if (n > state.length) {
      if (!state.ended) {
        callRead(this);
        return null;
      }
      n = state.length;
    }
    const all = bufferModule().Buffer.concat(state.buffer);
    chunk = all.subarray(0, n);
    const rest = all.subarray(n);
    state.buffer = rest.length ? [rest] : [];
    state.length = rest.length;
  }
  if (state.length === 0 && state.ended) endReadable(this);
  else maybeReadMore(this);
  if (chunk !== null && chunk !== undefined) this.emit("data", chunk);
  return chunk;
};

Readable.prototype.on = function (ev, fn) {
  const res = Stream.prototype.on.call(this, ev, fn);
  const state = this._readableState;
  if (ev === "data" && state.flowing !== false) this.resume();
  if (ev === "readable" && !state.endEmitted) {
    state.flowing = false;
    if (state.length) nextTick(() => this.emit("readable"));
    else callRead(this);
  }
  return res;
};
Readable.prototype.addListener = Readable.prototype.on;

Readable.prototype.resume = function () {
  const state = this._readableState;
  if (!state.flowing) {
    state.flowing = true;
    flow(this);
    if (!state.ended) maybeReadMore(this);
    this.emit("resume");
  }
  return this;
};
Readable.prototype.pause = function () {
  if (this._readableState.flowing !== false) {
    this._readableState.flowing = false;
    this.emit("pause");
  }
  return this;
};
Readable.prototype.isPaused = function () {
  return this._readableState.flowing === false;
};
Readable.prototype.setEncoding = function (enc) {
  const { StringDecoder } = core.loadExtScript("ext:codestep/node/string_decoder.js");
  this._readableState.decoder = new StringDecoder(enc);
  this._readableState.encoding = this._readableState.decoder.encoding;
  return this;
};

Readable.prototype.pipe = function (dest, options) {
  const src = this;
  const state = this._readableState;
  state.pipes.push(dest);
  const onData = (chunk) => {
    if (dest.write(chunk) === false) {
      src.pause();
      dest.once("drain", () => src.resume());
    }
  };
  src.on("data", onData);
  if (options?.end !== false) src.once("end", () => dest.end());
  src.once("error", (err) => {
    if (dest.listenerCount("error") === 0) return;
    dest.emit("error", err);
  });
  dest.emit("pipe", src);
  src.resume();
  return dest;
};
Readable.prototype.unpipe = function (dest) {
  const state = this._readableState;
  state.pipes = dest ? state.pipes.filter((d) => d !== dest) : [];
  this.removeAllListeners("data");
  return this;
};

function destroy(err, cb) {
  const state = this._readableState ?? this._writableState;
  const other = this._readableState && this._writableState ? this._writableState : null;
  if (state.destroyed) {
    if (typeof cb === "function") cb(err);
    return this;
  }
  state.destroyed = true;
  if (other) other.destroyed = true;
  const finish = (e) => {
    nextTick(() => {
      if (e) {
        state.errored = e;
        this.emit("error", e);
      }
      state.closed = true;
      if (other) other.closed = true;
      if (this._emitClose !== false) this.emit("close");
      if (typeof cb === "function") cb(e);
    });
  };
  if (typeof this._destroy === "function") {
    try {
      this._destroy(err ?? null, (e) => finish(e ?? err));
    } catch (e) {
      finish(e);
    }
  } else finish(err);
  return this;
}
Readable.prototype.destroy = destroy;
Readable.prototype._destroy = function (err, cb) {
  cb(err);
};

Readable.prototype[Symbol.asyncIterator] = function () {
  const stream = this;
  const queue = [];
  const waiters = [];
  let error = null;
  let done = false;
  const settle = () => {
    while (waiters.length) {
      const w = waiters.shift();
      if (queue.length) w.resolve({ value: queue.shift(), done: false });
      else if (error) w.reject(error);
      else if (done) w.resolve({ value: undefined, done: true });
      else {
        waiters.unshift(w);
        break;
      }
    }
  };
  stream.on("data", (c) => {
    queue.push(c);
    if (queue.length >= 1) stream.pause();
    settle();
  });
  stream.once("end", () => {
    done = true;
    settle();
  });
  stream.once("error", (e) => {
    error = e;
    settle();
  });
  stream.once("close", () => {
    done = true;
    settle();
  });
  return {
    next() {
      return new Promise((resolve, reject) => {
        waiters.push({ resolve, reject });
        settle();
        if (!queue.length && !done && !error) stream.resume();
      });
    },
    return() {
      done = true;
      stream.destroy();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
};

Readable.from = function (iterable, opts) {
  if (typeof iterable === "string" || iterable instanceof Uint8Array) {
    return new Readable({
      objectMode: true,
      ...opts,
      read() {
        this.push(iterable);
        this.push(null);
      },
    });
  }
  const it = iterable[Symbol.asyncIterator] ? iterable[Symbol.asyncIterator]() : iterable[Symbol.iterator]();
  let reading = false;
  return new Readable({
    objectMode: true,
    ...opts,
    async read() {
      if (reading) return;
      reading = true;
      try {
        while (true) {
          const { value, done } = await it.next();
          if (done) {
            this.push(null);
            break;
          }
          if (!this.push(await value)) break;
        }
      } catch (e) {
        this.destroy(e);
      }
      reading = false;
    },
    destroy(err, cb) {
      it.return?.();
      cb(err);
    },
  });
};

Readable.fromWeb = function (webStream, opts) {
  const reader = webStream.getReader();
  return new Readable({
    ...opts,
    async read() {
      try {
        const { value, done } = await reader.read();
        this.push(done ? null : value);
      } catch (e) {
        this.destroy(e);
      }
    },
    destroy(err, cb) {
      reader.cancel(err).catch(() => {});
      cb(err);
    },
  });
};
Readable.toWeb = function (stream) {
  return new ReadableStream({
    start(controller) {
      stream.on("data", (c) => {
        controller.enqueue(typeof c === "string" ? new TextEncoder().encode(c) : c);
        if (controller.desiredSize <= 0) stream.pause();
      });
      stream.once("end", () => controller.close());
      stream.once("error", (e) => controller.error(e));
      stream.pause();
    },
    pull() {
      stream.resume();
    },
    cancel(reason) {
      stream.destroy(reason);
    },
  });
};
Readable.isDisturbed = (s) => s._readableState?.flowing !== null;

// ---------------------------------------------------------------- Writable
function Writable(options = {}) {
  if (!(this instanceof Writable) && !(this instanceof Duplex)) return new Writable(options);
  Stream.call(this, options);
  initWritable(this, options);
}
Object.setPrototypeOf(Writable.prototype, Stream.prototype);
Object.setPrototypeOf(Writable, Stream);

function initWritable(stream, options) {
  stream._writableObjectMode = !!(options.objectMode || options.writableObjectMode);
  if (stream._objectMode === undefined) stream._objectMode = stream._writableObjectMode;
  stream._decodeStrings = options.decodeStrings;
  stream._writableState = {
    highWaterMark: options.highWaterMark ?? options.writableHighWaterMark ?? (stream._writableObjectMode ? 16 : 16384),
    length: 0,
    queue: [],
    writing: false,
    ending: false,
    ended: false,
    finished: false,
    destroyed: false,
    needDrain: false,
    corked: 0,
    errored: null,
    closed: false,
  };
  stream.writable = true;
  if (typeof options.write === "function") stream._write = options.write;
  if (typeof options.writev === "function") stream._writev = options.writev;
  if (typeof options.final === "function") stream._final = options.final;
  if (typeof options.destroy === "function") stream._destroy = options.destroy;
}

Object.defineProperties(Writable.prototype, {
  writableEnded: { get() { return this._writableState.ending; } },
  writableFinished: { get() { return this._writableState.finished; } },
  writableLength: { get() { return this._writableState.length; } },
  writableHighWaterMark: { get() { return this._writableState.highWaterMark; } },
  writableObjectMode: { get() { return this._writableObjectMode; } },
  writableNeedDrain: { get() { return this._writableState.needDrain; } },
  writableCorked: { get() { return this._writableState.corked; } },
  destroyed: {
    get() { return this._writableState.destroyed; },
    set(v) { this._writableState.destroyed = v; },
  },
});

Writable.prototype._write = function (chunk, encoding, cb) {
  if (this._writev) this._writev([{ chunk, encoding }], cb);
  else throw new Error("The _write() method is not implemented");
};

Writable.prototype.write = function (chunk, encoding, cb) {
  const state = this._writableState;
  if (typeof encoding === "function") {
    cb = encoding;
    encoding = undefined;
  }
  if (chunk === null) throw new TypeError("May not write null values to stream");
  if (state.ending || state.destroyed) {
    const err = new Error(state.destroyed ? "Cannot call write after a stream was destroyed" : "write after end");
    err.code = state.destroyed ? "ERR_STREAM_DESTROYED" : "ERR_STREAM_WRITE_AFTER_END";
    nextTick(() => {
      if (typeof cb === "function") cb(err);
      this.emit("error", err);
    });
    return false;
  }
  const objectMode = this._writableObjectMode;
  if (!objectMode && typeof chunk === "string" && this._decodeStrings !== false) {
    chunk = bufferModule().Buffer.from(chunk, encoding);
    encoding = "buffer";
  } else if (!objectMode && chunk instanceof Uint8Array) {
    encoding = "buffer";
  }
  const len = objectMode ? 1 : chunk.length;
  state.length += len;
  const ret = state.length < state.highWaterMark;
  if (!ret) state.needDrain = true;
  state.queue.push({ chunk, encoding, cb, len });
  if (!state.writing && !state.corked) writeNext(this);
  return ret;
};

function writeNext(stream) {
  const state = stream._writableState;
  if (state.writing || state.destroyed) return;
  const item = state.queue.shift();
  if (!item) {
    if (state.needDrain) {
      state.needDrain = false;
      nextTick(() => stream.emit("drain"));
    }
    if (state.ending) finishMaybe(stream);
    return;
  }
  state.writing = true;
  let sync = true;
  const done = (err) => {
    const after = () => {
      state.writing = false;
      state.length -= item.len;
      if (err) {
        if (typeof item.cb === "function") item.cb(err);
        stream.destroy(err);
        return;
      }
      if (typeof item.cb === "function") item.cb(null);
      writeNext(stream);
    };
    if (sync) nextTick(after);
    else after();
  };
  try {
    stream._write(item.chunk, item.encoding, done);
  } catch (e) {
    done(e);
  }
  sync = false;
}

function finishMaybe(stream) {
  const state = stream._writableState;
  if (state.finished || state.finishing || state.writing || state.queue.length) return;
  state.finishing = true;
  const finish = (err) => {
    if (err) {
      stream.destroy(err);
      return;
    }
    state.finished = true;
    stream.emit("finish");
    if (stream._readableState === undefined || stream._readableState.endEmitted) {
      if (stream._autoDestroy !== false) stream.destroy();
    }
  };
  if (typeof stream._final === "function") {
    try {
      stream._final((err) => nextTick(finish, err));
    } catch (e) {
      finish(e);
    }
  } else nextTick(finish);
}

Writable.prototype.end = function (chunk, encoding, cb) {
  if (typeof chunk === "function") {
    cb = chunk;
    chunk = undefined;
  } else if (typeof encoding === "function") {
    cb = encoding;
    encoding = undefined;
  }
  const state = this._writableState;
  if (chunk !== undefined && chunk !== null) this.write(chunk, encoding);
  if (typeof cb === "function") {
    if (state.finished) nextTick(cb);
    else this.once("finish", cb);
  }
  if (!state.ending) {
    state.ending = true;
    state.ended = true;
    this.writable = false;
    state.corked = 0;
    if (!state.writing) writeNext(this);
  }
  return this;
};
Writable.prototype.cork = function () {
  this._writableState.corked++;
};
Writable.prototype.uncork = function () {
  const state = this._writableState;
  if (state.corked) {
    state.corked--;
    if (!state.corked) writeNext(this);
  }
};
Writable.prototype.setDefaultEncoding = function () {
  return this;
};
Writable.prototype.destroy = destroy;
Writable.prototype._destroy = function (err, cb) {
  cb(err);
};
Writable.fromWeb = function (webStream, opts) {
  const writer = webStream.getWriter();
  return new Writable({
    ...opts,
    write(chunk, _enc, cb) {
      writer.write(chunk).then(() => cb(), cb);
    },
    final(cb) {
      writer.close().then(() => cb(), cb);
    },
  });
};
Writable.toWeb = function (stream) {
  return new WritableStream({
    write(chunk) {
      return new Promise((resolve, reject) => stream.write(chunk, (err) => (err ? reject(err) : resolve())));
    },
    close() {
      return new Promise((resolve) => stream.end(resolve));
    },
    abort(reason) {
      stream.destroy(reason);
    },
  });
};

// ---------------------------------------------------------------- Duplex, Transform, PassThrough
function Duplex(options = {}) {
  if (!(this instanceof Duplex)) return new Duplex(options);
  Readable.call(this, options);
  initWritable(this, options);
  if (options.allowHalfOpen === false) this.once("end", () => this.end());
}
Object.setPrototypeOf(Duplex.prototype, Readable.prototype);
Object.setPrototypeOf(Duplex, Readable);
for (const key of Object.getOwnPropertyNames(Writable.prototype)) {
  if (key === "constructor" || key === "destroy" || key === "_destroy" || key === "destroyed") continue;
  if (!Object.prototype.hasOwnProperty.call(Duplex.prototype, key)) {
    Object.defineProperty(Duplex.prototype, key, Object.getOwnPropertyDescriptor(Writable.prototype, key));
  }
}
Object.defineProperty(Duplex.prototype, "destroyed", {
  get() { return this._readableState.destroyed; },
  set(v) { this._readableState.destroyed = v; this._writableState.destroyed = v; },
});
Object.defineProperty(Writable, Symbol.hasInstance, {
  value(obj) {
    if (Function.prototype[Symbol.hasInstance].call(this, obj)) return true;
    return this === Writable && obj?._writableState !== undefined;
  },
});
Duplex.from = function (src) {
  if (src instanceof Duplex) return src;
  if (src?.readable && src?.writable) {
    const r = src.readable instanceof ReadableStream ? Readable.fromWeb(src.readable) : src.readable;
    const w = src.writable instanceof WritableStream ? Writable.fromWeb(src.writable) : src.writable;
    const d = new Duplex({
      read() {
        r.resume();
      },
      write(c, e, cb) {
        w.write(c, e, cb);
      },
      final(cb) {
        w.end(cb);
      },
    });
    r.on("data", (c) => {
      if (!d.push(c)) r.pause();
    });
    r.on("end", () => d.push(null));
    return d;
  }
  return Readable.from(src);
};

function Transform(options = {}) {
  if (!(this instanceof Transform)) return new Transform(options);
  Duplex.call(this, options);
  if (typeof options.transform === "function") this._transform = options.transform;
  if (typeof options.flush === "function") this._flush = options.flush;
  this._transformCallback = null;
}
Object.setPrototypeOf(Transform.prototype, Duplex.prototype);
Object.setPrototypeOf(Transform, Duplex);
Transform.prototype._transform = function () {
  throw new Error("The _transform() method is not implemented");
};
Transform.prototype._write = function (chunk, encoding, cb) {
  const rs = this._readableState;
  this._transform(chunk, encoding, (err, data) => {
    if (err) {
      cb(err);
      return;
    }
    if (data !== undefined && data !== null) this.push(data);
    if (rs.length < rs.highWaterMark || rs.flowing) cb();
    else this._transformCallback = cb;
  });
};
Transform.prototype._read = function () {
  const rs = this._readableState;
  rs.reading = false;
  const cb = this._transformCallback;
  if (cb) {
    this._transformCallback = null;
    cb();
  }
};
Transform.prototype._final = function (cb) {
  const done = (err, data) => {
    if (err) {
      cb(err);
      return;
    }
    if (data !== undefined && data !== null) this.push(data);
    this.push(null);
    cb();
  };
  if (typeof this._flush === "function") this._flush(done);
  else done();
};

function PassThrough(options) {
  if (!(this instanceof PassThrough)) return new PassThrough(options);
  Transform.call(this, options);
}
Object.setPrototypeOf(PassThrough.prototype, Transform.prototype);
Object.setPrototypeOf(PassThrough, Transform);
PassThrough.prototype._transform = function (chunk, _enc, cb) {
  cb(null, chunk);
};

// ---------------------------------------------------------------- finished, pipeline
function finished(stream, opts, callback) {
  if (typeof opts === "function") {
    callback = opts;
    opts = {};
  }
  let called = false;
  const done = (err) => {
    if (called) return;
    called = true;
    cleanup();
    callback.call(stream, err);
  };
  const onEnd = () => {
    if (!stream._writableState || stream._writableState.finished || opts?.writable === false) done();
  };
  const onFinish = () => {
    if (!stream._readableState || stream._readableState.endEmitted || opts?.readable === false) done();
  };
  const onError = (err) => done(err);
  const onClose = () => {
    const rs = stream._readableState;
    const ws = stream._writableState;
    if ((rs && !rs.endEmitted && opts?.readable !== false) || (ws && !ws.finished && opts?.writable !== false)) {
      const e = new Error("Premature close");
      e.code = "ERR_STREAM_PREMATURE_CLOSE";
      done(e);
    } else done();
  };
  stream.on("end", onEnd);
  stream.on("finish", onFinish);
  stream.on("error", onError);
  stream.on("close", onClose);
  const cleanup = () => {
    stream.removeListener("end", onEnd);
    stream.removeListener("finish", onFinish);
    stream.removeListener("error", onError);
    stream.removeListener("close", onClose);
  };
  if (stream._readableState?.endEmitted && (!stream._writableState || stream._writableState.finished)) nextTick(done);
  return cleanup;
}

function pipeline(...streams) {
  const callback = typeof streams[streams.length - 1] === "function" ? streams.pop() : null;
  if (streams.length === 1 && Array.isArray(streams[0])) streams = streams[0];
  if (streams.length < 2) throw new TypeError('The "streams" argument must have at least 2 items');
  streams = streams.map((s, i) => {
    if (typeof s === "function") s = s(i === 0 ? undefined : streams[i - 1]);
    if (s instanceof ReadableStream) return Readable.fromWeb(s);
    if (s instanceof WritableStream) return Writable.fromWeb(s);
    if (i === 0 && !(s instanceof Stream) && (s?.[Symbol.asyncIterator] || s?.[Symbol.iterator])) return Readable.from(s);
    return s;
  });
  let error;
  let pending = streams.length;
  const last = streams[streams.length - 1];
  const finish = (err) => {
    if (err && !error) {
      error = err;
      for (const s of streams) if (!s.destroyed) s.destroy?.(err);
    }
    if (--pending === 0 || err) {
      if (callback) {
        const cb = callback;
        callback_done(cb, error);
      }
    }
  };
  let cbCalled = false;
  const callback_done = (cb, err) => {
    if (cbCalled) return;
    cbCalled = true;
    nextTick(() => cb(err));
  };
  for (let i = 0; i < streams.length; i++) {
    const s = streams[i];
    finished(s, { readable: i < streams.length - 1, writable: i > 0 }, finish);
    if (i < streams.length - 1) s.pipe(streams[i + 1]);
  }
  return last;
}

const promises = {
  pipeline: (...streams) =>
    new Promise((resolve, reject) => {
      const opts = streams.length && typeof streams[streams.length - 1] === "object" && !(streams[streams.length - 1] instanceof Stream) && !streams[streams.length - 1][Symbol.asyncIterator] && !(streams[streams.length - 1] instanceof WritableStream) ? streams.pop() : undefined;
      void opts;
      pipeline(...streams, (err) => (err ? reject(err) : resolve()));
    }),
  finished: (stream, opts) =>
    new Promise((resolve, reject) => finished(stream, opts ?? {}, (err) => (err ? reject(err) : resolve()))),
};

function addAbortSignal(signal, stream) {
  signal.addEventListener("abort", () => stream.destroy(signal.reason), { once: true });
  return stream;
}

Stream.Stream = Stream;
Stream.Readable = Readable;
Stream.Writable = Writable;
Stream.Duplex = Duplex;
Stream.Transform = Transform;
Stream.PassThrough = PassThrough;
Stream.pipeline = pipeline;
Stream.finished = finished;
Stream.promises = promises;
Stream.addAbortSignal = addAbortSignal;
Stream.isReadable = (s) => !!s?.readable && !s.destroyed;
Stream.isErrored = (s) => !!s?.errored;
Stream.isDisturbed = Readable.isDisturbed;
Stream.getDefaultHighWaterMark = (objectMode) => (objectMode ? 16 : 16384);

return {
  default: Stream,
  Stream,
  Readable,
  Writable,
  Duplex,
  Transform,
  PassThrough,
  pipeline,
  finished,
  promises,
  addAbortSignal,
  isReadable: Stream.isReadable,
  isErrored: Stream.isErrored,
  isDisturbed: Stream.isDisturbed,
  getDefaultHighWaterMark: Stream.getDefaultHighWaterMark,
};
})();
