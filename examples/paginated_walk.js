// Walks every page of a cursor-paginated API (Stripe-style `has_more` / `starting_after`) and
// returns the ids it saw, stopping at `input.maxPages`.
export default async function (input) {
  const ids = [];
  let cursor;
  let pages = 0;
  const maxPages = input?.maxPages ?? 10;
  while (pages < maxPages) {
    const url = new URL("https://api.stripe.com/v1/customers");
    url.searchParams.set("limit", String(input?.pageSize ?? 2));
    if (cursor) url.searchParams.set("starting_after", cursor);
    const res = await fetch(url);
    if (!res.ok) throw new Error(`page ${pages + 1}: HTTP ${res.status}`);
    const page = await res.json();
    pages += 1;
    for (const item of page.data) ids.push(item.id);
    if (!page.has_more || page.data.length === 0) break;
    cursor = page.data[page.data.length - 1].id;
  }
  console.info(`walked ${pages} page(s)`);
  return { pages, ids };
}
