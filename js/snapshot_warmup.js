// Run by build.rs on the snapshot's context just before it is serialised; never loaded at run time.
// V8 compiles functions lazily and every step starts from a fresh isolate, so without this each step
// would compile the polyfill's hot paths again. Calling them here puts their bytecode in the snapshot.
// It must leave no state behind (everything made here is garbage once it returns). The only ops of
// ours it reaches are answered by build.rs's stand-in host (`WarmupHost`), which is gone before the
// snapshot is taken; the script's value is the promise build.rs runs to its end.
(() => {
  const headers = new Headers({ "content-type": "application/json", "x-a": "1" });
  headers.append("x-a", "2");
  headers.set("authorization", "Bearer x");
  headers.get("x-a");
  headers.has("x-b");
  headers.delete("authorization");
  for (const _ of headers);
  headers.forEach(() => {});
  headers.getSetCookie();

  const url = new URL("https://api.example.com/v1/items?limit=1#f");
  url.searchParams.set("starting_after", "a");
  url.searchParams.get("limit");
  String(url);
  new URLSearchParams({ a: "1" }).toString();

  const body = JSON.stringify({ a: 1, b: [1, 2] });
  const request = new Request(url, { method: "POST", headers, body, redirect: "follow" });

  request.headers.get("content-type");
  void request.url, request.method, request.signal, request.bodyUsed;

  const response = new Response(body, { status: 201, headers: { "content-type": "application/json" } });
  response.clone();
  void response.ok, response.status, response.statusText, response.headers, response.url, response.type;
  response.json().catch(() => {});
  new Response("text").text().catch(() => {});
  new Response(new Uint8Array([1, 2])).arrayBuffer().catch(() => {});
  Response.json({ a: 1 });

  new TextEncoder().encode("é");
  new TextDecoder().decode(new Uint8Array([0xc3, 0xa9]));
  const controller = new AbortController();
  void controller.signal.aborted;
  atob(btoa("x"));
  // Rejects before reaching Rust (the signal is already aborted), but compiles fetch's front half.
  fetch(new Request(url, { method: "POST", body: "{}", headers }), { signal: AbortSignal.abort() }).catch(() => {});
  structuredClone({ a: [1] });
})();

// The back half of fetch (response head, body read as JSON and as text), console formatting and the
// step runner, against build.rs's stand-in host: in every step that fetches or logs, these would
// otherwise be compiled again.
(async () => {
  const run = globalThis.__codestepRunStep;
  await run({ default: async (input, ctx) => ({ input, id: ctx.stepId }) }, '{"n":1}', '{"stepId":"w"}');
  const r = await fetch("https://warmup.invalid/v1/items?limit=1", { headers: { "x-test": "1" } });
  void r.status, r.ok, r.statusText, r.url, r.redirected;
  r.headers.get("content-type");
  await r.json();
  const posted = await fetch("https://warmup.invalid/v1/items", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer x" },
    body: JSON.stringify({ a: 1 }),
  });
  await posted.text();
  console.log("warm-up", { a: 1, b: [1, 2], c: "x" }, 3, null);
  console.error(new Error("warm-up"));
})();
