// node:querystring - parse and stringify with Node's escaping (spaces as %20, `+` decoded as space).
(function () {
function qsEscape(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}
function qsUnescape(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return unescape(s);
  }
}
function stringifyPrimitive(v) {
  if (typeof v === "string") return v;
  if ((typeof v === "number" && isFinite(v)) || typeof v === "bigint" || typeof v === "boolean") return `${v}`;
  return "";
}
function stringify(obj, sep = "&", eq = "=", options) {
  const encode = options?.encodeURIComponent ?? qsEscape;
  if (obj === null || typeof obj !== "object") return "";
  const out = [];
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    const ks = encode(stringifyPrimitive(k)) + eq;
    if (Array.isArray(v)) {
      for (const item of v) out.push(ks + encode(stringifyPrimitive(item)));
    } else {
      out.push(ks + encode(stringifyPrimitive(v)));
    }
  }
  return out.join(sep);
}
function parse(str, sep = "&", eq = "=", options) {
  const obj = { __proto__: null };
  if (typeof str !== "string" || str.length === 0) return obj;
  const decode = options?.decodeURIComponent ?? qsUnescape;
  let pairs = str.split(sep);
  const max = options?.maxKeys ?? 1000;
  if (max > 0) pairs = pairs.slice(0, max);
  for (const pair of pairs) {
    if (pair.length === 0) continue;
    const i = pair.indexOf(eq);
    const k = decode((i >= 0 ? pair.slice(0, i) : pair).replace(/\+/g, " "));
    const v = i >= 0 ? decode(pair.slice(i + eq.length).replace(/\+/g, " ")) : "";
    if (k in obj) {
      if (Array.isArray(obj[k])) obj[k].push(v);
      else obj[k] = [obj[k], v];
    } else obj[k] = v;
  }
  return obj;
}
const qs = { parse, stringify, decode: parse, encode: stringify, escape: qsEscape, unescape: qsUnescape, unescapeBuffer: (s) => globalThis.Buffer.from(qsUnescape(s)) };
qs.default = qs;
return qs;
})();
