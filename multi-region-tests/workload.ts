// Canary workload for multi-region tests: producers in several regions, every attempt
// recorded in a History, and a final read of every region's log.
import type { Producer } from '../client/index.ts';
import type { Cluster } from './cluster.ts';
import type { History } from './history.ts';

export interface Workload {
  /** Stops sending and waits for outstanding sends to settle. */
  stop(): Promise<void>;
  /** Waits until every producer has sent all its messages (or run out of time) and they settled. */
  finished(): Promise<void>;
  acked(): number;
}

/** One producer per region, sending until stopped (bounded by `messagesMax` and `durationMs`). */
export function runProducers(
  cluster: Cluster,
  history: History,
  options: { topic: string; regions: string[]; messagesMax: number; durationMs: number; inflightMax?: number; ratePerRegion?: number },
): Workload {
  let stopping = false;
  let acked = 0;
  const deadline = Date.now() + options.durationMs;
  const loops = options.regions.map(async (region) => {
    const producer = (await cluster.client(region).createProducer({ topic: options.topic, producerName: `canary-${region}`, sendTimeoutMs: 120_000 })) as Producer;
    const inflight = new Set<Promise<void>>();
    const startedMs = Date.now();
    for (let i = 0; i < options.messagesMax && !stopping && Date.now() < deadline; i++) {
      const payload = `${region}-${i}`;
      const sequenceId = producer.lastSequenceId + 1;
      const p = producer.send({ payload }).then(
        (id) => {
          acked++;
          history.recordProduce({ region, topic: options.topic, producer: producer.producerName, sequenceId: id.sequenceId, payload, acked: true, originRegion: region, originPosition: id.offset, offset: id.offset, hlc: id.hlc, atMs: Date.now() });
        },
        () => history.recordProduce({ region, topic: options.topic, producer: producer.producerName, sequenceId, payload, acked: false, atMs: Date.now() }),
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (inflight.size >= (options.inflightMax ?? 50)) await Promise.race(inflight);
      // Pacing, so that the run spans the fault instead of finishing before it.
      if (options.ratePerRegion) {
        const dueMs = startedMs + ((i + 1) * 1000) / options.ratePerRegion;
        if (dueMs > Date.now()) await new Promise((r) => setTimeout(r, dueMs - Date.now()));
      } else if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(inflight);
  });
  return {
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
    finished: async () => {
      await Promise.all(loops);
    },
    acked: () => acked,
  };
}

/** Reads `topic` in every region into the history. */
export async function recordStoredEverywhere(cluster: Cluster, history: History, topic: string): Promise<void> {
  for (const region of cluster.regions.keys()) {
    for (const m of await cluster.readAll(region, topic)) {
      history.recordStored({ region, topic, offset: m.offset, originRegion: m.originRegion, originPosition: m.originPosition, producer: m.producerName, sequenceId: m.sequenceId, payload: m.payload.toString(), hlc: m.hlc });
    }
  }
}
