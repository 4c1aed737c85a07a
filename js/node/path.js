// node:path - POSIX paths (path.win32 is not provided; path.posix is this module).
(function () {
function assertPath(p) {
  if (typeof p !== "string") {
    const e = new TypeError(`The "path" argument must be of type string. Received ${p === null ? "null" : typeof p}`);
    e.code = "ERR_INVALID_ARG_TYPE";
    throw e;
  }
}

function normalizeString(path, allowAboveRoot) {
  const out = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length && out[out.length - 1] !== "..") out.pop();
      else if (allowAboveRoot) out.push("..");
      continue;
    }
    out.push(seg);
  }
  return out.join("/");
}

const path = {
  sep: "/",
  delimiter: ":",
  resolve(...args) {
    let resolved = "";
    let absolute = false;
    for (let i = args.length - 1; i >= -1 && !absolute; i--) {
      const p = i >= 0 ? args[i] : "/";
      assertPath(p);
      if (p.length === 0) continue;
      resolved = `${p}/${resolved}`;
      absolute = p[0] === "/";
    }
    resolved = normalizeString(resolved, !absolute);
    return absolute ? `/${resolved}` : resolved.length ? resolved : ".";
  },
  normalize(p) {
    assertPath(p);
    if (p.length === 0) return ".";
    const absolute = p[0] === "/";
    const trailing = p[p.length - 1] === "/";
    let out = normalizeString(p, !absolute);
    if (out.length === 0) {
      if (absolute) return "/";
      return trailing ? "./" : ".";
    }
    if (trailing) out += "/";
    return absolute ? `/${out}` : out;
  },
  isAbsolute(p) {
    assertPath(p);
    return p.length > 0 && p[0] === "/";
  },
  join(...args) {
    if (args.length === 0) return ".";
    const parts = [];
    for (const a of args) {
      assertPath(a);
      if (a.length) parts.push(a);
    }
    return parts.length ? path.normalize(parts.join("/")) : ".";
  },
  relative(from, to) {
    assertPath(from);
    assertPath(to);
    if (from === to) return "";
    from = path.resolve(from);
    to = path.resolve(to);
    if (from === to) return "";
    const f = from === "/" ? [] : from.slice(1).split("/");
    const t = to === "/" ? [] : to.slice(1).split("/");
    let i = 0;
    while (i < f.length && i < t.length && f[i] === t[i]) i++;
    return [...Array(f.length - i).fill(".."), ...t.slice(i)].join("/");
  },
  toNamespacedPath(p) {
    return p;
  },
  dirname(p) {
    assertPath(p);
    if (p.length === 0) return ".";
    let end = p.length;
    while (end > 1 && p[end - 1] === "/") end--;
    const i = p.lastIndexOf("/", end - 1);
    if (i === -1) return ".";
    if (i === 0) return "/";
    let e = i;
    while (e > 1 && p[e - 1] === "/") e--;
    return p.slice(0, e);
  },
  basename(p, ext) {
    assertPath(p);
    let end = p.length;
    while (end > 0 && p[end - 1] === "/") end--;
    if (end === 0) return "";
    const start = p.lastIndexOf("/", end - 1) + 1;
    let base = p.slice(start, end);
    if (ext !== undefined && base.endsWith(ext) && base !== ext) base = base.slice(0, base.length - ext.length);
    return base;
  },
  extname(p) {
    assertPath(p);
    const base = path.basename(p);
    const i = base.lastIndexOf(".");
    if (i <= 0) return "";
    return base.slice(i);
  },
  format(obj) {
    const dir = obj.dir || obj.root;
    const base = obj.base || `${obj.name || ""}${obj.ext ? (obj.ext[0] === "." ? "" : ".") + obj.ext : ""}`;
    if (!dir) return base;
    return dir === obj.root ? `${dir}${base}` : `${dir}/${base}`;
  },
  parse(p) {
    assertPath(p);
    const root = p[0] === "/" ? "/" : "";
    const base = path.basename(p);
    const ext = path.extname(p);
    let dir = path.dirname(p);
    if (dir === "." && !p.includes("/")) dir = "";
    return { root, dir, base, ext, name: ext ? base.slice(0, base.length - ext.length) : base };
  },
  matchesGlob() {
    throw new Error("path.matchesGlob is not supported in codestep");
  },
};
path.posix = path;
path.default = path;
return path;
})();
