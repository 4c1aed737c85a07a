// The extension's entry point: installs fetch and friends, and leaves behind the one function the
// engine calls to run a step. The engine takes that function and deletes it (with `Deno` and
// `__bootstrap`) before any user code runs, so a step cannot reach it.

import { primordials } from "ext:core/mod.js";
import "ext:codestep/00_globals.js";
import "ext:codestep/60_node_globals.js";
import { fetch, FormData, Headers, Request, Response } from "ext:codestep/50_fetch.js";

const { JSONParse, JSONStringify, ObjectDefineProperty, ObjectFreeze, StringPrototypeIncludes, TypeError } = primordials;
const { ArrayIsArray, FunctionPrototypeCall, ObjectEntries, ObjectFromEntries, ObjectKeys } = primordials;
const toWellFormed = String.prototype.toWellFormed;
const isWellFormed = String.prototype.isWellFormed;
const StringPrototypeToWellFormed = (s) => FunctionPrototypeCall(toWellFormed, s);
const StringPrototypeIsWellFormed = (s) => FunctionPrototypeCall(isWellFormed, s);

function wellFormed(_key, value) {
  if (typeof value === "string") return StringPrototypeToWellFormed(value);
  if (value !== null && typeof value === "object" && !ArrayIsArray(value)) {
    const keys = ObjectKeys(value);
    for (let i = 0; i < keys.length; i++) {
      if (!StringPrototypeIsWellFormed(keys[i])) {
        return ObjectFromEntries(ObjectEntries(value).map(([k, v]) => [StringPrototypeToWellFormed(k), v]));
      }
    }
  }
  return value;
}

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
  if (output === undefined) return "undefined";
  if (typeof output === "function" || typeof output === "symbol") {
    throw new TypeError(`the step's return value is not JSON-serialisable: it is a ${typeof output}`);
  }
  let json;
  try {
    json = JSONStringify(output);
  } catch (e) {
    throw new TypeError(`the step's return value is not JSON-serialisable: ${e?.message ?? e}`);
  }
  // A lone surrogate becomes U+FFFD rather than failing the whole output (JSON.stringify escapes it,
  // and strict JSON readers refuse the escape).
  if (StringPrototypeIncludes(json, "\\ud") || StringPrototypeIncludes(json, "\\uD")) {
    json = JSONStringify(output, wellFormed);
  }
  return json === undefined ? "null" : json;
}

ObjectDefineProperty(globalThis, "__codestepRunStep", { value: runStep, configurable: true });
