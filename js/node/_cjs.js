// CommonJS for package files: `require`, `module`, `exports`, `__filename`, `__dirname`. The sources come
// from the step's module set (sent by the supervisor with the job) through ops; `require(specifier)` finds
// only what the supervisor resolved ahead of time. Each module's wrapper function is compiled with V8's
// code cache. The facades of CommonJS modules (made by the loader) import `load` from here; nothing else
// can import this module.
(function () {
const { core, primordials } = __bootstrap;
const { op_codestep_require, op_codestep_module_source } = core.ops;
const {
  Error,
  FunctionPrototypeCall,
  JSONParse,
  ObjectCreate,
  Proxy,
  SafeMap,
  StringPrototypeIndexOf,
  StringPrototypeLastIndexOf,
  StringPrototypeSlice,
  StringPrototypeStartsWith,
  TypeError,
} = primordials;

const BUILTINS = {
  __proto__: null,
  "_empty": "ext:codestep/node/_empty.js",
  "assert": "ext:codestep/node/assert.js",
  "assert/strict": "ext:codestep/node/assert_strict.js",
  "async_hooks": "ext:codestep/node/async_hooks.js",
  "buffer": "ext:codestep/node/buffer.js",
  "crypto": "ext:codestep/node/crypto.js",
  "events": "ext:codestep/node/events.js",
  "os": "ext:codestep/node/os.js",
  "path": "ext:codestep/node/path.js",
  "path/posix": "ext:codestep/node/path.js",
  "process": "ext:codestep/node/process.js",
  "querystring": "ext:codestep/node/querystring.js",
  "stream": "ext:codestep/node/stream.js",
  "stream/promises": "ext:codestep/node/stream_promises.js",
  "stream/web": "ext:codestep/node/stream_web.js",
  "string_decoder": "ext:codestep/node/string_decoder.js",
  "timers": "ext:codestep/node/timers.js",
  "timers/promises": "ext:codestep/node/timers_promises.js",
  "url": "ext:codestep/node/url.js",
  "util": "ext:codestep/node/util.js",
  "util/types": "ext:codestep/node/util_types.js",
  "zlib": "ext:codestep/node/zlib.js",
};

function display(id) {
  return StringPrototypeStartsWith(id, "file:///") ? StringPrototypeSlice(id, 7) : id;
}

function dirname(path) {
  const i = StringPrototypeLastIndexOf(path, "/");
  return i <= 0 ? "/" : StringPrototypeSlice(path, 0, i);
}

function builtin(name) {
  const script = BUILTINS[name];
  if (script === undefined) throw new Error(`Cannot find module 'node:${name}'`);
  const exports = core.loadExtScript(script);
  return exports.default !== undefined ? exports.default : exports;
}

// A refused built-in, for a package that mentions it: every function of it throws, saying why.
const stubs = new SafeMap();
function refused(name, message) {
  let stub = stubs.get(name);
  if (stub !== undefined) return stub;
  const fail = (what) => {
    const e = new Error(`${message} (${what} was called)`);
    e.code = "ERR_CODESTEP_UNAVAILABLE";
    throw e;
  };
  // The root is an object whose names are listed (so that `__importStar` and `{ ...fs }` copy them);
  // every member is a function that throws when called, and whose own members do the same.
  const names = REFUSED_NAMES;
  const root = {};
  const make = (path) =>
    new Proxy(function () {}, {
      get(_target, key) {
        if (typeof key === "symbol" || key === "then" || key === "__esModule" || key === "prototype") return undefined;
        if (key === "default") return stub;
        return make(`${path}.${key}`);
      },
      apply() {
        fail(`${path}()`);
      },
      construct() {
        // An HTTP agent is only configuration for sockets codestep never opens: an inert object.
        if (StringPrototypeSlice(path, -6) === ".Agent") return { destroy() {} };
        fail(`new ${path}()`);
      },
    });
  const member = (key) => (key === "default" ? stub : make(`node:${name}.${key}`));
  stub = new Proxy(root, {
    get(_target, key) {
      if (typeof key === "symbol" || key === "then" || key === "__esModule") return undefined;
      return member(key);
    },
    has(_target, key) {
      return typeof key === "string" && names.includes(key);
    },
    ownKeys() {
      return names.slice();
    },
    getOwnPropertyDescriptor(_target, key) {
      if (typeof key !== "string" || !names.includes(key)) return undefined;
      return { value: member(key), writable: false, enumerable: true, configurable: true };
    },
    set() {
      return false;
    },
  });
  stubs.set(name, stub);
  return stub;
}

// The names a refused built-in's stub lists as its own (any other name works too when read directly).
const REFUSED_NAMES = [
  "readFile", "readFileSync", "writeFile", "writeFileSync", "existsSync", "statSync", "stat", "lstat",
  "lstatSync", "readdir", "readdirSync", "mkdir", "mkdirSync", "createReadStream", "createWriteStream",
  "promises", "constants", "access", "accessSync", "realpathSync", "unlink", "unlinkSync", "spawn",
  "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork", "request", "get", "Agent",
  "globalAgent", "createServer", "connect", "createConnection", "Socket", "isIP", "isIPv4", "isIPv6",
  "Worker", "isMainThread", "parentPort", "workerData", "lookup", "createInterface", "isatty",
  "performance", "STATUS_CODES", "METHODS",
];

const modules = new SafeMap();

class Module {
  constructor(id) {
    this.id = display(id);
    this.filename = display(id);
    this.path = dirname(this.filename);
    this.exports = {};
    this.loaded = false;
    this.children = [];
    this.paths = [];
    this.parent = undefined;
  }
}

function resolved(tagged) {
  const tag = tagged[0];
  const rest = StringPrototypeSlice(tagged, 2);
  switch (tag) {
    case "b":
      return builtin(rest);
    case "r": {
      const nl = StringPrototypeIndexOf(rest, "\n");
      return refused(StringPrototypeSlice(rest, 0, nl), StringPrototypeSlice(rest, nl + 1));
    }
    case "c":
      return load(rest);
    case "j": {
      let m = modules.get(rest);
      if (m === undefined) {
        m = new Module(rest);
        m.exports = JSONParse(op_codestep_module_source(rest));
        m.loaded = true;
        modules.set(rest, m);
      }
      return m.exports;
    }
    default: {
      const e = new Error(
        `require() of the ES module ${display(rest)} is not supported: import it instead`,
      );
      e.code = "ERR_REQUIRE_ESM";
      throw e;
    }
  }
}

function makeRequire(referrer) {
  function require(specifier) {
    if (typeof specifier !== "string") {
      throw new TypeError(`The "id" argument must be of type string. Received ${typeof specifier}`);
    }
    let tagged;
    try {
      tagged = op_codestep_require(referrer, specifier);
    } catch (e) {
      const err = new Error(e.message);
      err.code = "MODULE_NOT_FOUND";
      throw err;
    }
    return resolved(tagged);
  }
  require.resolve = (specifier) => {
    const tagged = op_codestep_require(referrer, `${specifier}`);
    return tagged[0] === "b" || tagged[0] === "r"
      ? StringPrototypeSlice(tagged, 2, StringPrototypeIndexOf(tagged, "\n") >>> 0)
      : display(StringPrototypeSlice(tagged, 2));
  };
  require.cache = ObjectCreate(null);
  require.main = undefined;
  return require;
}

const PARAMS = ["exports", "require", "module", "__filename", "__dirname"];

function load(id) {
  let m = modules.get(id);
  if (m !== undefined) return m.exports;
  const source = op_codestep_module_source(id);
  m = new Module(id);
  modules.set(id, m);
  const { 0: fn, 1: err } = core.compileFunction(source, id, undefined, PARAMS);
  if (err) {
    modules.delete(id);
    throw err.thrown;
  }
  try {
    FunctionPrototypeCall(fn, m.exports, m.exports, makeRequire(id), m, m.filename, m.path);
  } catch (e) {
    modules.delete(id);
    throw e;
  }
  m.loaded = true;
  return m.exports;
}

return { load, refused };
})();
