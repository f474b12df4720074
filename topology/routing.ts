// Routing of replicated entries. For each origin region, the regions of a replication set
// form a breadth-first spanning tree rooted at the origin over the links that stay inside
// the set (ties broken by region name, so every region computes the same tree). An entry
// travels down that tree: exactly one path from its origin to every other region of the
// set, whatever the topology — full mesh (one hop), hub and spoke, or chains.

/** Parent of each region in the origin's spanning tree, restricted to `members`. */
export function spanningTree(links: Array<[string, string]>, members: readonly string[], origin: string): Map<string, string> {
  const parent = new Map<string, string>();
  if (!members.includes(origin)) return parent;
  const adjacency = new Map<string, string[]>();
  for (const [a, b] of links) {
    if (!members.includes(a) || !members.includes(b)) continue;
    adjacency.set(a, [...(adjacency.get(a) ?? []), b]);
    adjacency.set(b, [...(adjacency.get(b) ?? []), a]);
  }
  const visited = new Set([origin]);
  let frontier = [origin];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const at of [...frontier].sort()) {
      for (const n of [...(adjacency.get(at) ?? [])].sort()) {
        if (visited.has(n)) continue;
        visited.add(n);
        parent.set(n, at);
        next.push(n);
      }
    }
    frontier = next;
  }
  return parent;
}

/** The regions to which `at` must forward entries that originated in `origin`. */
export function nextHops(links: Array<[string, string]>, members: readonly string[], origin: string, at: string): string[] {
  const parent = spanningTree(links, members, origin);
  const out: string[] = [];
  for (const [child, p] of parent) if (p === at) out.push(child);
  return out.sort();
}

/** The path an entry of `origin` takes to `destination`, origin first; [] if unreachable. */
export function pathTo(links: Array<[string, string]>, members: readonly string[], origin: string, destination: string): string[] {
  if (origin === destination) return [origin];
  const parent = spanningTree(links, members, origin);
  if (!parent.has(destination)) return [];
  const path = [destination];
  let at = destination;
  while (at !== origin) {
    at = parent.get(at) as string;
    path.unshift(at);
  }
  return path;
}
