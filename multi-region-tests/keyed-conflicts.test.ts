// Keyed topics across regions (DESIGN §6, invariant 6): three regions write the same keys
// concurrently while one of them is partitioned off and the links are delayed unevenly;
// once healed, every region holds the same table, and the conflict feed lists each
// recorded concurrent pair once, identically everywhere.
import test from 'ava';
import { decodeConflictRecord } from '../conflict/index.ts';
import { waitFor } from '../test-support/processes.ts';
import { Cluster } from './cluster.ts';

const REGIONS = ['shanghai', 'beijing', 'shenzhen'];
const KEYS = 8;
const ROUNDS = 12;

type Row = { key: string; value?: string; deleted?: boolean; originRegion: string; originPosition: number };

for (const [label, conflictPolicy] of [
  ['last-writer-wins', undefined],
  ['region priority', { kind: 'region-priority', regions: ['beijing', 'shenzhen', 'shanghai'] }],
  ['highest value at $.balance', { kind: 'max-json-path', path: '$.balance' }],
] as const) {
  test.serial(`keyed topic (${label}): concurrent writes in 3 regions under a partition converge to one table; the conflict feed lists each pair once`, async (t) => {
    const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
    t.log(`seed ${seed} (replay with ADMQ_SEED=${seed})`);
    const cluster = await Cluster.start({
      regions: REGIONS,
      transport: 'insecure',
      namespaces: { 'public/default': { replicationSet: REGIONS, ...(conflictPolicy ? { conflictPolicy } : {}) } },
    });
    t.teardown(() => cluster.stop());
    const topic = 'persistent://public/default/balances';
    await cluster.createTopic('shanghai', topic, { keyed: true });
    // Uneven delays reorder arrivals; shenzhen is cut off for the first half.
    cluster.proxies.get('shanghai->beijing')?.setDelay(5);
    cluster.proxies.get('beijing->shenzhen')?.setDelay(25);
    cluster.proxies.get('shenzhen->shanghai')?.setDelay(15);
    cluster.partition('shenzhen');
    const producers = await Promise.all(REGIONS.map((r) => cluster.client(r).createProducer({ topic, producerName: `writer-${r}` })));
    let state = seed;
    const random = (): number => {
      state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return state / 2 ** 32;
    };
    for (let round = 0; round < ROUNDS; round++) {
      if (round === ROUNDS / 2) cluster.heal();
      await Promise.all(
        producers.map((p, i) => {
          const key = `account-${Math.floor(random() * KEYS)}`;
          return p.send({ key, payload: JSON.stringify({ balance: Math.floor(random() * 1000), by: REGIONS[i], round }) });
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 40)));
    }
    cluster.heal();
    await cluster.waitConverged(topic, 60_000);
    const tables = await Promise.all(REGIONS.map(async (r) => (await cluster.admin(r).topicTable(topic)) as Row[]));
    t.true((tables[0] as Row[]).length > 0);
    t.deepEqual(tables[1], tables[0], 'beijing’s table equals shanghai’s');
    t.deepEqual(tables[2], tables[0], 'shenzhen’s table equals shanghai’s');
    // The conflict feed: written by the winners' regions, replicated everywhere, each pair once.
    const feed = 'persistent://public/default/__conflicts';
    await waitFor(async () => {
      try {
        await cluster.waitConverged(feed, 5_000);
        return true;
      } catch {
        return false;
      }
    }, 60_000, 'the conflict feed to converge');
    const feeds = await Promise.all(REGIONS.map(async (r) => (await cluster.readAll(r, feed)).map((m) => decodeConflictRecord(m.payload))));
    const pairIds = (feeds[0] ?? []).map((r) => r.pairId);
    t.true(pairIds.length > 0, 'a partition with concurrent writes records conflicts');
    t.is(new Set(pairIds).size, pairIds.length, 'each pair listed once');
    for (const f of feeds) t.deepEqual(f.map((r) => r.pairId).sort(), [...pairIds].sort(), 'the same feed in every region');
    for (const record of feeds[0] ?? []) {
      t.is(record.recordedBy, record.winner.originRegion, 'recorded by the winner’s region');
      t.is(record.policy, conflictPolicy?.kind ?? 'lww');
    }
    t.log(`${pairIds.length} conflicts recorded; ${(tables[0] as Row[]).length} keys`);
  });
}
