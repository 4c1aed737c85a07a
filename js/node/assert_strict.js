// node:assert/strict
(function () {
const { core } = __bootstrap;
const strict = core.loadExtScript("ext:codestep/node/assert.js").strict;
return { default: strict, ...strict };
})();
