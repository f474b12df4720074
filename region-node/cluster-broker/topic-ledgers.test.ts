// A topic's ledgers with the real ledger client, real storage node stores (LMDB, in
// process) and the embedded metadata store: rollover keeps chunk order across ledgers and
// closes the old ledger first; a takeover reads every chunk back in order and fences the
// previous owner, whose further chunks then fail as moved.
import test from 'ava';
import { ErrorCode } from '../../proto/index.ts';
import { AdmqError } from '../errors.ts';
import { LedgerClient } from '../ledger-storage/ledger-client.ts';
import { TestStoragePool } from '../ledger-storage/test-pool.ts';
import { LmdbMetadataStore } from '../metadata-store/index.ts';
import { tempDir } from '../../test-support/temp-dir.ts';
import { TopicLedgers, ledgerAccess } from './topic-ledgers.ts';

async function region(t: { teardown(fn: () => unknown): void }) {
  const metadata = LmdbMetadataStore.open(tempDir('admq-topic-ledgers-'));
  const pool = await TestStoragePool.create(3, { metadata });
  t.teardown(async () => {
    await pool.close();
    await metadata.close();
  });
  const client = (writerId: string) => ledgerAccess(new LedgerClient({ metadata, pool, writerId }));
  const state = async (ledgerId: number) => (await new LedgerClient({ metadata, pool, writerId: 'reader' }).getMetadata(ledgerId))?.state;
  return { metadata, client, state };
}

const chunk = (i: number) => Buffer.from(`chunk-${i}`);

async function readAll(ledgers: TopicLedgers): Promise<string[]> {
  const out: string[] = [];
  for await (const c of ledgers.chunks()) out.push(c.toString());
  return out;
}

test('rollover: a new ledger every N chunks, in order, each closed before the next takes chunks; a takeover reads them all', async (t) => {
  const { metadata, client, state } = await region(t);
  const topic = 'persistent://t/n/rolled';
  const a = await TopicLedgers.acquire(topic, metadata, client('broker-a'), 'broker-a', { entriesMax: 10, bytesMax: 1 << 30, ageMaxMs: 3_600_000 });
  // All at once, as a busy log hands them over: the rollovers happen while adds are in flight.
  await Promise.all(Array.from({ length: 35 }, (_, i) => a.persist(chunk(i))));
  t.is(a.ledgerIds().length, 4, '35 chunks at 10 per ledger');
  t.deepEqual(await Promise.all(a.ledgerIds().map(state)), ['closed', 'closed', 'closed', 'open']);

  const b = await TopicLedgers.acquire(topic, metadata, client('broker-b'), 'broker-b');
  t.deepEqual(await readAll(b), Array.from({ length: 35 }, (_, i) => `chunk-${i}`));
  t.is(b.ledgerIds().length, 5, 'the four of broker-a, then its own');
  // broker-a's ledger was recovered and fenced: its next chunk cannot be stored.
  const error = await t.throwsAsync(a.persist(chunk(35)));
  t.truthy(error);
  await b.persist(chunk(35));
  const c = await TopicLedgers.acquire(topic, metadata, client('broker-c'), 'broker-c');
  t.deepEqual((await readAll(c)).slice(-2), ['chunk-34', 'chunk-35']);
});

test('two brokers taking one topic over at once: one wins, the other gets ADMQ_ERR_TOPIC_MOVED', async (t) => {
  const { metadata, client } = await region(t);
  const topic = 'persistent://t/n/raced';
  const first = await TopicLedgers.acquire(topic, metadata, client('broker-a'), 'broker-a');
  await first.persist(chunk(0));
  const outcomes = await Promise.allSettled([
    TopicLedgers.acquire(topic, metadata, client('broker-b'), 'broker-b'),
    TopicLedgers.acquire(topic, metadata, client('broker-c'), 'broker-c'),
  ]);
  const won = outcomes.filter((o) => o.status === 'fulfilled');
  const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
  t.is(won.length, 1);
  t.is(lost.length, 1);
  t.is((lost[0]?.reason as AdmqError).code, ErrorCode.TopicMoved);
  const winner = (won[0] as PromiseFulfilledResult<TopicLedgers>).value;
  t.deepEqual(await readAll(winner), ['chunk-0']);
});
