// node:os - what packages ask for to build a user agent; a step sees no facts about its host.
(function () {
const os = {
  EOL: "\n",
  platform: () => "linux",
  type: () => "Linux",
  arch: () => "x64",
  release: () => "",
  version: () => "",
  machine: () => "x86_64",
  hostname: () => "codestep",
  homedir: () => "/",
  tmpdir: () => "/tmp",
  endianness: () => "LE",
  uptime: () => 0,
  loadavg: () => [0, 0, 0],
  totalmem: () => 0,
  freemem: () => 0,
  availableParallelism: () => 1,
  cpus: () => [],
  networkInterfaces: () => ({}),
  userInfo: () => ({ uid: 0, gid: 0, username: "codestep", homedir: "/", shell: null }),
  constants: { signals: {}, errno: {} },
  devNull: "/dev/null",
};
os.default = os;
return os;
})();
