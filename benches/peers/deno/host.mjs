// Deno: one long-lived process, a new Worker (isolate and thread) per step, with no permissions, or
// net permission for the upstream only when the step has connectors (Deno cannot add a secret outside
// the step). Takes codestep's request body. Usage: host.mjs HOST PORT ALLOW
const [host, port, allow] = Deno.args;
const dataUrl = (src) => "data:text/javascript," + encodeURIComponent(src);
const runner = (code) => dataUrl(`import step from ${JSON.stringify(dataUrl(code))};
self.onmessage = async (e) => {
  try { self.postMessage({ ok: true, output: await step(e.data) }); }
  catch (err) { self.postMessage({ ok: false, error: String(err) }); }
};`);

Deno.serve({ hostname: host, port: Number(port), onListen() {} }, async (req) => {
  const body = await req.json();
  const permissions = (body.connectors || []).length
    ? { net: allow.split(","), read: false, write: false, env: false, run: false, ffi: false, sys: false, import: false }
    : "none";
  const w = new Worker(runner(body.code), { type: "module", deno: { permissions } });
  try {
    const res = await new Promise((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => { e.preventDefault(); reject(new Error(e.message)); };
      w.postMessage(body.input);
    });
    return Response.json(res, { status: res.ok ? 200 : 500 });
  } catch (e) {
    return Response.json({ ok: false, error: String(e) }, { status: 500 });
  } finally {
    w.terminate();
  }
});
