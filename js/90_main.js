// The extension's entry point: installs fetch and friends, and leaves behind the one function the
// engine calls to run a step. The engine takes that function and deletes it (with `Deno` and
// `__bootstrap`) before any user code runs, so a step cannot reach it.

import { primordials } from "ext:core/mod.js";
import "ext:codestep/00_globals.js";
import "ext:codestep/60_node_globals.js";
import { fetch, FormData, Headers, Request, Response } from "ext:codestep/50_fetch.js";

const { JSONParse, JSONStringify, ObjectDefineProperty, ObjectFreeze, TypeError } = primordials;

for (const [name, value] of [["fetch", fetch], ["FormData", FormData], ["Headers", Headers], ["Request", Request], ["Response", Response]]) {
  ObjectDefineProperty(globalThis, name, { value, writable: true, enumerable: false, configurable: true });
}

async function runStep(namespace, inputJson, ctxJson) {
  const step = namespace.default;
  if (typeof step !== "function") {
    throw new TypeError("a step module must `export default` a function (input, ctx) => value");
  }
  const ctx = ObjectFreeze(JSONParse(ctxJson));
  const output = await step(JSONParse(inputJson), ctx);
  let json;
  try {
    json = JSONStringify(output);
  } catch (e) {
    throw new TypeError(`the step's return value is not JSON-serialisable: ${e?.message ?? e}`);
  }
  return json === undefined ? "null" : json;
}

ObjectDefineProperty(globalThis, "__codestepRunStep", { value: runStep, configurable: true });
