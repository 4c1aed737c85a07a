// node:string_decoder - decodes byte chunks without splitting a multi-byte character between them.
(function () {
const { core } = __bootstrap;
function StringDecoder(encoding = "utf8") {
  const enc = `${encoding}`.toLowerCase().replace("-", "");
  const Buffer = core.loadExtScript("ext:codestep/node/buffer.js").Buffer;
  if (!Buffer.isEncoding(encoding)) {
    const e = new TypeError(`Unknown encoding: ${encoding}`);
    e.code = "ERR_UNKNOWN_ENCODING";
    throw e;
  }
  this.encoding = enc === "utf8" ? "utf8" : enc === "ucs2" || enc === "utf16le" ? "utf16le" : enc;
  this._buffer = Buffer;
  this._pending = new Uint8Array(0);
  this._text = this.encoding === "utf8" ? new TextDecoder("utf-8") : null;
}
StringDecoder.prototype.write = function write(buf) {
  if (typeof buf === "string") return buf;
  const Buffer = this._buffer;
  const bytes = buf instanceof Uint8Array ? buf : Buffer.from(buf);
  if (this._text) return this._text.decode(bytes, { stream: true });
  let all = this._pending.length ? Buffer.concat([this._pending, bytes]) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const unit = this.encoding === "utf16le" ? 2 : this.encoding === "base64" || this.encoding === "base64url" ? 3 : 1;
  const keep = all.length % unit;
  this._pending = keep ? Buffer.from(all.subarray(all.length - keep)) : new Uint8Array(0);
  all = all.subarray(0, all.length - keep);
  return all.toString(this.encoding);
};
StringDecoder.prototype.end = function end(buf) {
  let out = buf !== undefined ? this.write(buf) : "";
  if (this._text) {
    out += this._text.decode();
    this._text = new TextDecoder("utf-8");
  } else if (this._pending.length) {
    out += this._buffer.from(this._pending).toString(this.encoding);
    this._pending = new Uint8Array(0);
  }
  return out;
};
StringDecoder.prototype.text = function text(buf, offset) {
  return this.write(buf.subarray(offset));
};
return { StringDecoder, default: { StringDecoder } };
})();
