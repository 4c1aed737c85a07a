// The static worker's outbound: allow-list and secret injection, in a worker of its own.
export default {
  async fetch(req, env) {
    const u = new URL(req.url);
    if (u.protocol !== "https:" || !env.ALLOW.split(",").includes(u.host)) {
      return new Response("egress denied", { status: 403 });
    }
    const headers = new Headers(req.headers);
    headers.set("authorization", `Bearer ${env.SECRET}`);
    return fetch(new Request(req, { headers }));
  },
};
