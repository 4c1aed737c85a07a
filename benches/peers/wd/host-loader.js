// Takes codestep's request body ({code, input, connectors}) and runs `code` in a fresh isolate from
// the Worker Loader (a new id per request, so nothing is reused). With connectors, the step's fetch
// goes out through `Outbound` (allow-list, secret added here); without, it has no network.
import { WorkerEntrypoint } from "cloudflare:workers";

const RUNNER = `import step from "./step.js";
export default {
  async fetch(req) {
    try { return Response.json({ ok: true, output: await step(await req.json()) }); }
    catch (e) { return Response.json({ ok: false, error: String(e) }, { status: 500 }); }
  },
};`;

export class Outbound extends WorkerEntrypoint {
  async fetch(req) {
    const u = new URL(req.url);
    if (u.protocol !== "https:" || !this.env.ALLOW.split(",").includes(u.host)) {
      return new Response("egress denied", { status: 403 });
    }
    const headers = new Headers(req.headers);
    headers.set("authorization", `Bearer ${this.env.SECRET}`);
    return fetch(new Request(req, { headers }));
  }
}

export default {
  async fetch(req, env, ctx) {
    const body = await req.json();
    const worker = env.LOADER.load({
      compatibilityDate: "2025-09-01",
      mainModule: "runner.js",
      modules: { "runner.js": RUNNER, "step.js": body.code },
      env: {},
      globalOutbound: (body.connectors || []).length ? ctx.exports.Outbound({ props: {} }) : null,
    });
    return worker.getEntrypoint().fetch("http://step/", { method: "POST", body: JSON.stringify(body.input ?? null) });
  },
};
