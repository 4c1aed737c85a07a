// node:process (and the `process` global): no environment unless the operator passes named variables
// (`--env NAME`), no argv, no exit. `nextTick` queues a microtask.
(function () {
const { core } = __bootstrap;
const events = core.loadExtScript("ext:codestep/node/events.js");
const EventEmitter = events.EventEmitter;

const env = { __proto__: null };
for (const [name, value] of core.ops.op_codestep_env()) env[name] = value;

const version = "v22.0.0";
const start = Date.now();
const process = new EventEmitter();
Object.assign(process, {
  title: "codestep",
  version,
  versions: { node: "22.0.0", codestep: core.ops.op_codestep_user_agent().split("/")[1], v8: "13" },
  release: { name: "node" },
  platform: "linux",
  arch: "x64",
  argv: [],
  argv0: "codestep",
  execArgv: [],
  execPath: "/codestep",
  pid: 1,
  ppid: 0,
  env,
  exitCode: undefined,
  browser: false,
  config: { variables: {} },
  features: {},
  stdout: { write() { return true; }, isTTY: false, fd: 1 },
  stderr: { write() { return true; }, isTTY: false, fd: 2 },
  stdin: { isTTY: false, fd: 0 },
  cwd: () => "/",
  chdir() {
    throw new Error("process.chdir is not available in a step");
  },
  umask: () => 0o22,
  uptime: () => (Date.now() - start) / 1000,
  hrtime: Object.assign(
    function hrtime(prev) {
      const now = performance.now();
      const s = Math.floor(now / 1000);
      const ns = Math.floor((now % 1000) * 1e6);
      if (!prev) return [s, ns];
      let ds = s - prev[0];
      let dns = ns - prev[1];
      if (dns < 0) {
        ds -= 1;
        dns += 1e9;
      }
      return [ds, dns];
    },
    { bigint: () => BigInt(Math.floor(performance.now() * 1e6)) },
  ),
  memoryUsage: Object.assign(() => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }), { rss: () => 0 }),
  cpuUsage: () => ({ user: 0, system: 0 }),
  resourceUsage: () => ({}),
  nextTick(callback, ...args) {
    if (typeof callback !== "function") throw new TypeError('The "callback" argument must be of type function');
    queueMicrotask(() => callback(...args));
  },
  emitWarning(warning, type) {
    const msg = typeof warning === "string" ? warning : warning?.message;
    console.warn(`${typeof type === "string" ? type : warning?.name ?? "Warning"}: ${msg}`);
  },
  exit(code) {
    throw new Error(`process.exit(${code ?? ""}) is not available in a step: return from the step instead`);
  },
  abort() {
    throw new Error("process.abort is not available in a step");
  },
  kill() {
    throw new Error("process.kill is not available in a step");
  },
  binding() {
    throw new Error("process.binding is not available in a step");
  },
  getuid: () => 0,
  getgid: () => 0,
  geteuid: () => 0,
  getegid: () => 0,
});
process.default = process;
return process;
})();
