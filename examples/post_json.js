// Creates a record by POSTing JSON, with an idempotency key, and returns what the API made.
export default async function (input) {
  const res = await fetch("https://api.stripe.com/v1/customers", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "idempotency-key": crypto.randomUUID(),
    },
    body: JSON.stringify({ email: input?.email ?? "ada@example.com", name: input?.name ?? "Ada Lovelace" }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`create failed: HTTP ${res.status} ${JSON.stringify(body)}`);
  return { id: body.id, email: body.email, status: res.status };
}
