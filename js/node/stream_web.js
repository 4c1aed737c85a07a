// node:stream/web - the web streams that are already global.
(function () {
const g = globalThis;
const m = {
  ReadableStream: g.ReadableStream,
  ReadableStreamDefaultReader: g.ReadableStreamDefaultReader,
  ReadableStreamBYOBReader: g.ReadableStreamBYOBReader,
  WritableStream: g.WritableStream,
  WritableStreamDefaultWriter: g.WritableStreamDefaultWriter,
  TransformStream: g.TransformStream,
  ByteLengthQueuingStrategy: g.ByteLengthQueuingStrategy,
  CountQueuingStrategy: g.CountQueuingStrategy,
  TextEncoderStream: g.TextEncoderStream,
  TextDecoderStream: g.TextDecoderStream,
};
m.default = m;
return m;
})();
