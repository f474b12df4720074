import test from 'ava';
import fc from 'fast-check';
import {
  ConflictRecordError,
  applyVersion,
  buildConflictRecord,
  conflictPairId,
  decodeConflictRecord,
  detectConflicts,
  emptyKeyedState,
  encodeConflictRecord,
  lwwPolicy,
  maxJsonPathPolicy,
  packHlc,
  recorderOf,
  valueDigest,
  versionVector,
  type ConflictPair,
  type ConflictRecord,
  type KeyedVersion,
} from './index.ts';
import { simulateKeyedHistory } from './test-histories.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
const numRuns = 150;
test.before(() => console.log(`conflict-record property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const TOPIC = 'persistent://acme/orders/balances';

function version(originRegion: string, originPosition: number, wallMs: number, value: Buffer | null): KeyedVersion {
  return {
    key: 'account-7',
    value,
    originRegion,
    originPosition,
    hlc: packHlc(wallMs, 3),
    vv: versionVector([[originRegion, originPosition]]),
  };
}

const beijing = version('beijing', 12, 1_700_000_000_000, Buffer.from('{"balance":10}'));
const shanghai = version('shanghai', 40, 1_700_000_000_001, Buffer.from('{"balance":7}'));

function pairOf(): ConflictPair {
  const state = applyVersion(emptyKeyedState('account-7'), beijing);
  const [pair] = detectConflicts(TOPIC, state, shanghai, lwwPolicy());
  return pair!;
}

test('conflict-record: detecting a concurrent pair, its recorder and its id', (t) => {
  const pair = pairOf();
  t.is(pair.winner, shanghai);
  t.is(pair.loser, beijing);
  t.is(pair.policy, 'lww');
  t.is(recorderOf(pair), 'shanghai', 'the origin region of the winner records it');
  // Under another policy the other region wins, and so records.
  const [byBalance] = detectConflicts(TOPIC, applyVersion(emptyKeyedState('account-7'), shanghai), beijing, maxJsonPathPolicy('$.balance'));
  t.is(recorderOf(byBalance!), 'beijing');
  t.is(conflictPairId(TOPIC, beijing, shanghai), conflictPairId(TOPIC, shanghai, beijing));
  t.regex(conflictPairId(TOPIC, beijing, shanghai), /^[0-9a-f]{32}$/);
  t.not(conflictPairId(TOPIC, beijing, shanghai), conflictPairId(`${TOPIC}-partition-1`, beijing, shanghai));
  // Nothing is detected for a write the state has already seen.
  const both = applyVersion(applyVersion(emptyKeyedState('account-7'), beijing), shanghai);
  t.deepEqual(detectConflicts(TOPIC, both, beijing, lwwPolicy()), []);
});

test('conflict-record: encodes to deterministic JSON and decodes back', (t) => {
  const record = buildConflictRecord(pairOf());
  const bytes = encodeConflictRecord(record);
  t.deepEqual(decodeConflictRecord(bytes), record);
  t.deepEqual(encodeConflictRecord(decodeConflictRecord(bytes)), bytes);
  const json = JSON.parse(bytes.toString()) as Record<string, unknown>;
  t.deepEqual(Object.keys(json), ['format', 'pairId', 'topic', 'key', 'policy', 'recordedBy', 'winner', 'loser']);
  t.like(record, {
    format: 1,
    topic: TOPIC,
    key: 'account-7',
    policy: 'lww',
    recordedBy: 'shanghai',
    winner: {
      originRegion: 'shanghai',
      originPosition: 40,
      hlc: packHlc(1_700_000_000_001, 3).toString(),
      vv: 'shanghai:40',
      deleted: false,
      valueBytes: 13,
      valueDigest: valueDigest(Buffer.from('{"balance":7}')),
      valueBase64: Buffer.from('{"balance":7}').toString('base64'),
    },
  });
});

test('conflict-record: small values are inlined, large ones only digested, deletions marked', (t) => {
  const big = version('beijing', 12, 1_700_000_000_000, Buffer.alloc(300, 1));
  const del = version('shanghai', 40, 1_700_000_000_001, null);
  const [pair] = detectConflicts(TOPIC, applyVersion(emptyKeyedState('account-7'), big), del, lwwPolicy());
  const record = buildConflictRecord(pair!);
  t.is(record.loser.valueBytes, 300);
  t.is(record.loser.valueBase64, undefined);
  t.regex(record.loser.valueDigest ?? '', /^sha256-128:[0-9a-f]{32}$/);
  t.deepEqual(record.winner, {
    originRegion: 'shanghai',
    originPosition: 40,
    hlc: del.hlc.toString(),
    vv: 'shanghai:40',
    deleted: true,
    valueBytes: 0,
  });
  t.deepEqual(decodeConflictRecord(encodeConflictRecord(record)), record);
  t.truthy(buildConflictRecord(pair!, { valueInlineBytesMax: 300 }).loser.valueBase64);
  t.throws(() => buildConflictRecord(pair!, { valueInlineBytesMax: -1 }), {
    instanceOf: ConflictRecordError,
    message: /valueInlineBytesMax/,
  });
});

test('conflict-record: malformed records get a typed error naming the field', (t) => {
  const good = buildConflictRecord(pairOf());
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form edits of decoded JSON
  type Loose = Record<string, any>;
  const mutate = (change: (r: Loose) => void): Buffer => {
    const copy = JSON.parse(JSON.stringify(good)) as Loose;
    change(copy);
    return Buffer.from(JSON.stringify(copy));
  };
  const cases: Array<[Buffer, string]> = [
    [Buffer.from('{'), '$'],
    [Buffer.from([0xff, 0xfe]), '$'],
    [Buffer.from('[]'), '$'],
    [Buffer.alloc(200_000, 0x20), '$'],
    [mutate((r) => (r.format = 2)), 'format'],
    [mutate((r) => (r.pairId = 'x')), 'pairId'],
    [mutate((r) => (r.pairId = '0'.repeat(32))), 'pairId'],
    [mutate((r) => (r.topic = 'persistent://other/ns/t')), 'pairId'],
    [mutate((r) => (r.key = 5)), 'key'],
    [mutate((r) => (r.policy = 'newest')), 'policy'],
    [mutate((r) => (r.recordedBy = 'beijing')), 'recordedBy'],
    [mutate((r) => delete r.winner), 'winner'],
    [mutate((r) => (r.winner.originRegion = 'Shanghai')), 'winner.originRegion'],
    [mutate((r) => (r.winner.originPosition = -4)), 'winner.originPosition'],
    [mutate((r) => (r.winner.hlc = 12)), 'winner.hlc'],
    [mutate((r) => (r.winner.hlc = '18446744073709551616')), 'winner.hlc'],
    [mutate((r) => (r.winner.vv = 'shanghai:41')), 'winner.vv'],
    [mutate((r) => (r.winner.vv = 'shanghai:x')), 'winner.vv'],
    [mutate((r) => (r.loser.vv = 'beijing:12,shanghai:40')), 'loser.vv'],
    [mutate((r) => (r.loser.deleted = 'no')), 'loser.deleted'],
    [mutate((r) => (r.loser.deleted = true)), 'loser.deleted'],
    [mutate((r) => (r.loser.valueBytes = 1.5)), 'loser.valueBytes'],
    [mutate((r) => (r.loser.valueDigest = 'md5:00')), 'loser.valueDigest'],
    [mutate((r) => (r.loser.valueBase64 = 'e30=')), 'loser.valueBase64'],
    [mutate((r) => (r.loser.valueBase64 = '!!!')), 'loser.valueBase64'],
    [mutate((r) => (r.loser.valueDigest = `sha256-128:${'0'.repeat(32)}`)), 'loser.valueBase64'],
    [mutate((r) => (r.loser = r.winner)), 'loser'],
  ];
  for (const [bytes, field] of cases) {
    const error = t.throws(() => decodeConflictRecord(bytes), { instanceOf: ConflictRecordError }, field);
    t.is(error?.code, 'ADMQ_ERR_CONFLICT_RECORD');
    t.is(error?.field, field, bytes.subarray(0, 120).toString());
  }
});

test('conflict-record: garbage and damaged records never decode to anything but a typed error', (t) => {
  const bytes = encodeConflictRecord(buildConflictRecord(pairOf()));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.record({ at: fc.nat(bytes.length - 1), byte: fc.integer({ min: 0, max: 255 }) }).map(({ at, byte }) => {
          const copy = Buffer.from(bytes);
          copy[at] = byte;
          return copy;
        }),
        fc.nat(bytes.length).map((length) => bytes.subarray(0, length)),
      ),
      (input) => {
        try {
          const record: ConflictRecord = decodeConflictRecord(input);
          // A damaged record that still decodes must still be internally consistent.
          return encodeConflictRecord(record).length > 0;
        } catch (error) {
          return error instanceof ConflictRecordError;
        }
      },
    ),
    { seed, numRuns },
  );
  t.pass();
});

test('conflict-record: on causal histories every pair is recorded at most once, by its winner origin', (t) => {
  const policy = lwwPolicy();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      fc.constantFrom(['a', 'b'], ['a', 'b', 'c', 'd']),
      fc.integer({ min: 2, max: 40 }),
      (historySeed, regions, steps) => {
        const history = simulateKeyedHistory(historySeed, { regions, steps, redeliverProbability: 0.2 });
        const recorded = new Map<string, string>();
        for (const event of history.events) {
          const pairs = detectConflicts(TOPIC, event.stateBefore, event.version, policy);
          if (event.kind === 'write' && pairs.length > 0) return false; // a local write has seen its state
          for (const pair of pairs) {
            if (recorderOf(pair) !== event.region) continue;
            const record = buildConflictRecord(pair);
            if (recorded.has(record.pairId)) return false;
            const bytes = encodeConflictRecord(record);
            recorded.set(record.pairId, bytes.toString('hex'));
            if (decodeConflictRecord(bytes).pairId !== record.pairId) return false;
          }
        }
        return true;
      },
    ),
    { seed, numRuns: 80 },
  );
  t.pass();
});
