// node:assert - ok, equal, strictEqual, deepEqual, deepStrictEqual and their negations, throws,
// rejects, doesNotThrow, match, fail, AssertionError; assert/strict.
(function () {
const { core } = __bootstrap;

class AssertionError extends Error {
  constructor(options) {
    const { message, actual, expected, operator } = options ?? {};
    super(message ?? `${inspect(actual)} ${operator} ${inspect(expected)}`);
    this.name = "AssertionError";
    this.code = "ERR_ASSERTION";
    this.actual = actual;
    this.expected = expected;
    this.operator = operator;
    this.generatedMessage = message === undefined;
  }
}

function inspect(v) {
  try {
    return core.loadExtScript("ext:deno_web/01_console.js").inspect(v, { colors: false, depth: 3 });
  } catch {
    return String(v);
  }
}

function fail(actual, expected, message, operator) {
  if (message instanceof Error) throw message;
  throw new AssertionError({ message, actual, expected, operator });
}

const tag = (v) => Object.prototype.toString.call(v);

function deepEqual(a, b, strict, seen = new Map()) {
  if (strict ? Object.is(a, b) : a == b || (a !== a && b !== b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (strict && Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (tag(a) !== tag(b)) return false;
  if (seen.get(a) === b) return true;
  seen.set(a, b);
  if (a instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof RegExp) return a.source === b.source && a.flags === b.flags;
  if (a instanceof Error && (a.message !== b.message || a.name !== b.name)) return false;
  if (ArrayBuffer.isView(a)) {
    if (a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  if (a instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) {
      if (!b.has(k) || !deepEqual(v, b.get(k), strict, seen)) return false;
    }
    return true;
  }
  if (a instanceof Set) {
    if (a.size !== b.size) return false;
    outer: for (const v of a) {
      if (b.has(v)) continue;
      if (typeof v === "object") {
        for (const w of b) if (deepEqual(v, w, strict, seen)) continue outer;
      }
      return false;
    }
    return true;
  }
  if (typeof a.valueOf === "function" && !Array.isArray(a) && (a instanceof Number || a instanceof String || a instanceof Boolean)) {
    if (!Object.is(a.valueOf(), b.valueOf())) return false;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!deepEqual(a[k], b[k], strict, seen)) return false;
  }
  return true;
}

function matches(err, expected, message) {
  if (expected === undefined) return;
  if (typeof expected === "function") {
    if (expected.prototype !== undefined && err instanceof expected) return;
    if (Error.isPrototypeOf(expected) || expected === Error) fail(err, expected, message, "throws");
    if (expected.call({}, err) === true) return;
    fail(err, expected, message ?? "The validation function is expected to return \"true\"", "throws");
  }
  if (expected instanceof RegExp) {
    if (expected.test(String(err))) return;
    fail(err, expected, message ?? `The input did not match the regular expression ${expected}`, "throws");
  }
  if (typeof expected === "object") {
    for (const k of Object.keys(expected)) {
      const want = expected[k];
      const got = err?.[k];
      if (want instanceof RegExp && typeof got === "string" ? !want.test(got) : !deepEqual(got, want, true)) {
        fail(err, expected, message ?? `Expected values to be strictly deep-equal (property "${k}")`, "throws");
      }
    }
  }
}

function makeAssert(strict) {
  function assert(value, message) {
    if (!value) fail(value, true, message ?? (arguments.length === 0 ? "No value argument passed to `assert.ok()`" : "The expression evaluated to a falsy value"), "==");
  }
  assert.ok = assert;
  assert.fail = (message = "Failed") => {
    if (message instanceof Error) throw message;
    throw new AssertionError({ message, operator: "fail" });
  };
  assert.equal = strict
    ? (a, b, m) => Object.is(a, b) || fail(a, b, m, "strictEqual")
    : (a, b, m) => a == b || (a !== a && b !== b) || fail(a, b, m, "==");
  assert.notEqual = strict
    ? (a, b, m) => !Object.is(a, b) || fail(a, b, m, "notStrictEqual")
    : (a, b, m) => a != b || fail(a, b, m, "!=");
  assert.strictEqual = (a, b, m) => Object.is(a, b) || fail(a, b, m ?? `Expected values to be strictly equal:\n\n${inspect(a)} !== ${inspect(b)}\n`, "strictEqual");
  assert.notStrictEqual = (a, b, m) => !Object.is(a, b) || fail(a, b, m, "notStrictEqual");
  assert.deepEqual = (a, b, m) => deepEqual(a, b, strict) || fail(a, b, m ?? `Expected values to be ${strict ? "strictly " : "loosely "}deep-equal`, strict ? "deepStrictEqual" : "deepEqual");
  assert.notDeepEqual = (a, b, m) => !deepEqual(a, b, strict) || fail(a, b, m, "notDeepEqual");
  assert.deepStrictEqual = (a, b, m) => deepEqual(a, b, true) || fail(a, b, m ?? "Expected values to be strictly deep-equal", "deepStrictEqual");
  assert.notDeepStrictEqual = (a, b, m) => !deepEqual(a, b, true) || fail(a, b, m, "notDeepStrictEqual");
  assert.throws = (fn, expected, message) => {
    if (typeof expected === "string") {
      message = expected;
      expected = undefined;
    }
    try {
      fn();
    } catch (e) {
      matches(e, expected, message);
      return;
    }
    fail(undefined, expected, message ?? "Missing expected exception.", "throws");
  };
  assert.doesNotThrow = (fn, message) => {
    try {
      fn();
    } catch (e) {
      fail(e, undefined, typeof message === "string" ? message : `Got unwanted exception.\nActual message: "${e?.message}"`, "doesNotThrow");
    }
  };
  assert.rejects = async (p, expected, message) => {
    try {
      await (typeof p === "function" ? p() : p);
    } catch (e) {
      matches(e, expected, message);
      return;
    }
    fail(undefined, expected, message ?? "Missing expected rejection.", "rejects");
  };
  assert.doesNotReject = async (p, message) => {
    try {
      await (typeof p === "function" ? p() : p);
    } catch (e) {
      fail(e, undefined, message ?? `Got unwanted rejection.\nActual message: "${e?.message}"`, "doesNotReject");
    }
  };
  assert.match = (s, re, m) => re.test(s) || fail(s, re, m ?? `The input did not match the regular expression ${re}. Input:\n\n${inspect(s)}\n`, "match");
  assert.doesNotMatch = (s, re, m) => !re.test(s) || fail(s, re, m, "doesNotMatch");
  assert.ifError = (v) => {
    if (v !== null && v !== undefined) throw v instanceof Error ? v : new AssertionError({ message: `ifError got unwanted exception: ${inspect(v)}` });
  };
  assert.AssertionError = AssertionError;
  return assert;
}

const assert = makeAssert(false);
const strict = makeAssert(true);
assert.strict = strict;
strict.strict = strict;
return { default: assert, ...assert, strict, AssertionError };
})();
