// node:url - the WHATWG URL classes, and the legacy parse/format/resolve basics. There are no files, so
// fileURLToPath and pathToFileURL refuse.
(function () {
const { core } = __bootstrap;
const qs = core.loadExtScript("ext:codestep/node/querystring.js");

function Url() {
  this.protocol = null;
  this.slashes = null;
  this.auth = null;
  this.host = null;
  this.port = null;
  this.hostname = null;
  this.hash = null;
  this.search = null;
  this.query = null;
  this.pathname = null;
  this.path = null;
  this.href = null;
}

const SLASHED = new Set(["http:", "https:", "ftp:", "ws:", "wss:", "file:"]);

function parse(input, parseQueryString = false, slashesDenoteHost = false) {
  if (input instanceof Url) return input;
  if (typeof input !== "string") throw new TypeError(`The "url" argument must be of type string. Received ${typeof input}`);
  const u = new Url();
  let rest = input.trim();
  const hashAt = rest.indexOf("#");
  if (hashAt >= 0) {
    u.hash = rest.slice(hashAt);
    rest = rest.slice(0, hashAt);
  }
  const qAt = rest.indexOf("?");
  if (qAt >= 0) {
    u.search = rest.slice(qAt);
    u.query = rest.slice(qAt + 1);
    rest = rest.slice(0, qAt);
  } else if (parseQueryString) {
    u.search = "";
    u.query = {};
  }
  const proto = /^([a-z][a-z0-9.+-]*:)/i.exec(rest);
  if (proto) {
    u.protocol = proto[1].toLowerCase();
    rest = rest.slice(proto[1].length);
  }
  if ((proto && SLASHED.has(u.protocol)) || slashesDenoteHost || rest.startsWith("//")) {
    if (rest.startsWith("//")) {
      u.slashes = true;
      rest = rest.slice(2);
      const end = rest.search(/[/]/);
      let host = end >= 0 ? rest.slice(0, end) : rest;
      rest = end >= 0 ? rest.slice(end) : "";
      const at = host.lastIndexOf("@");
      if (at >= 0) {
        u.auth = decodeURIComponent(host.slice(0, at));
        host = host.slice(at + 1);
      }
      u.host = host.toLowerCase();
      const portMatch = /:(\d*)$/.exec(host);
      if (portMatch) {
        u.port = portMatch[1] || null;
        u.hostname = host.slice(0, host.length - portMatch[0].length).toLowerCase();
      } else u.hostname = host.toLowerCase();
      if (u.hostname.startsWith("[") && u.hostname.endsWith("]")) u.hostname = u.hostname.slice(1, -1);
    }
  }
  u.pathname = rest || (u.slashes ? "/" : null);
  if (parseQueryString && typeof u.query === "string") u.query = qs.parse(u.query);
  u.path = (u.pathname || "") + (u.search || "") || null;
  u.href = format(u);
  return u;
}

function format(obj) {
  if (typeof obj === "string") obj = parse(obj);
  if (obj instanceof URL) return obj.href;
  let auth = obj.auth ? encodeURIComponent(obj.auth).replace(/%3A/i, ":") + "@" : "";
  let protocol = obj.protocol || "";
  if (protocol && !protocol.endsWith(":")) protocol += ":";
  let host = "";
  if (obj.host) host = auth + obj.host;
  else if (obj.hostname) host = auth + (obj.hostname.includes(":") ? `[${obj.hostname}]` : obj.hostname) + (obj.port ? `:${obj.port}` : "");
  let pathname = obj.pathname || "";
  let search = obj.search || "";
  if (!search && obj.query && typeof obj.query === "object") {
    const q = qs.stringify(obj.query);
    if (q) search = `?${q}`;
  }
  if (search && search[0] !== "?") search = `?${search}`;
  let hash = obj.hash || "";
  if (hash && hash[0] !== "#") hash = `#${hash}`;
  if (obj.slashes || SLASHED.has(protocol)) {
    if (host || protocol === "file:") host = `//${host}`;
    if (pathname && pathname[0] !== "/") pathname = `/${pathname}`;
  }
  return protocol + host + pathname + search.replace(/#/g, "%23") + hash;
}

function resolve(from, to) {
  return new URL(to, new URL(from, "resolve://")).href.replace(/^resolve:\/\/\/?/, from.startsWith("/") ? "/" : "");
}

function fileURLToPath() {
  throw new Error("url.fileURLToPath is not available in a step: steps have no files");
}
function pathToFileURL() {
  throw new Error("url.pathToFileURL is not available in a step: steps have no files");
}
function urlToHttpOptions(url) {
  return {
    protocol: url.protocol,
    hostname: url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname,
    hash: url.hash,
    search: url.search,
    pathname: url.pathname,
    path: `${url.pathname || ""}${url.search || ""}`,
    href: url.href,
    port: url.port !== "" ? Number(url.port) : undefined,
    auth: url.username || url.password ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined,
  };
}

const url = {
  URL: globalThis.URL,
  URLSearchParams: globalThis.URLSearchParams,
  Url,
  parse,
  format,
  resolve,
  fileURLToPath,
  pathToFileURL,
  urlToHttpOptions,
  domainToASCII: (d) => {
    try {
      return new URL(`http://${d}`).hostname;
    } catch {
      return "";
    }
  },
  domainToUnicode: (d) => d,
};
url.default = url;
return url;
})();
