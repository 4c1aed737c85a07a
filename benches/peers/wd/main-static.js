// The static worker: the steps are modules of this worker, picked by the body's "step" field.
import trivial from "./trivial.mjs";
import fetchStep from "./fetch.mjs";
import sleep from "./sleep.mjs";
const STEPS = { trivial, fetch: fetchStep, sleep };
export default {
  async fetch(req) {
    const body = await req.json();
    try { return Response.json({ ok: true, output: await STEPS[body.step](body.input) }); }
    catch (e) { return Response.json({ ok: false, error: String(e) }, { status: 500 }); }
  },
};
