// Lists recent Stripe charges and summarises them by currency and status.
// The Stripe secret key is injected by codestep's Rust side; this code never sees it.
export default async function (input, ctx) {
  const limit = input?.limit ?? 100;
  const res = await fetch(`https://api.stripe.com/v1/charges?limit=${limit}`);
  if (!res.ok) {
    throw new Error(`Stripe answered ${res.status}: ${(await res.json()).error?.message ?? res.statusText}`);
  }
  const { data } = await res.json();
  const totals = {};
  for (const charge of data) {
    const key = `${charge.currency}:${charge.status}`;
    totals[key] ??= { currency: charge.currency, status: charge.status, count: 0, amount: 0 };
    totals[key].count += 1;
    totals[key].amount += charge.amount;
  }
  console.log(`summarised ${data.length} charges for step ${ctx.stepId}`);
  return { charges: data.length, totals: Object.values(totals) };
}
