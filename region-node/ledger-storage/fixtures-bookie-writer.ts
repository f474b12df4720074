// Test fixture: adds entries to a bookie store as fast as it can and prints each acked id,
// until it is killed. The SIGKILL test then checks that every printed entry is stored.
import { BookieStore } from './bookie-store.ts';

const store = BookieStore.open(process.argv[2] as string);
let next = 0;
const inflight = new Set<Promise<void>>();
for (;;) {
  const id = next++;
  const p = store.add(7, id, id - 1, Buffer.from(`entry-${id}`), 'writer-a').then(() => {
    process.stdout.write(`acked ${id}\n`);
  });
  inflight.add(p);
  void p.finally(() => inflight.delete(p));
  if (inflight.size >= 200) await Promise.race(inflight);
}
