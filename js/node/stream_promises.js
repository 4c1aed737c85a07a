// node:stream/promises
(function () {
const { core } = __bootstrap;
const s = core.loadExtScript("ext:codestep/node/stream.js").default;
const m = { pipeline: s.promises.pipeline, finished: s.promises.finished };
m.default = m;
return m;
})();
