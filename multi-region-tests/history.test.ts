// Unit and property tests of the history checker. Histories are built by a small
// simulation of active-active replication (pure logic, no processes), then mutated by hand
// or at random. Randomized tests print their seed; ADMQ_SEED=<seed> replays one.
import test from 'ava';
import fc from 'fast-check';
import { hlcReceive, hlcTick } from '../conflict/index.ts';
import { History, checkHistory, formatViolations, type InvariantNumber, type ProduceRecord, type StoredRecord, type Violation } from './history.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`history checker property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const TOPIC = 'persistent://public/default/history';
const REGIONS = ['shanghai', 'beijing', 'shenzhen'];
/** Physical time of the simulation's first step, in ms. */
const START_MS = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// A simulated active-active run

/** A history before it is recorded, so that tests can break it first. */
interface Model {
  regions: string[];
  produces: ProduceRecord[];
  /** Each region's log, in offset order. */
  logs: Map<string, StoredRecord[]>;
}

interface SimulationSpec {
  regions: string[];
  /** Writes accepted by each region, by index in `regions`. */
  writesPerRegion: number[];
  /** Choices of the next event (a write, or a delivery on a link), consumed in turn; then the first possible event. */
  schedule: number[];
  /** Each region's physical clock offset, in ms. */
  skewMs?: number[];
  /** Writes whose ack is lost, as `region:index`: stored, but the producer was not told. */
  unackedStored?: Set<string>;
  /** Sends per region that fail before being stored, after the stored writes. */
  unackedUnstored?: number[];
}

/**
 * Full-mesh replication: each step either writes in one region or delivers the next
 * entry of one origin to one other region, so every log interleaves origins while keeping
 * each origin's order. Clocks follow the real HLC rules, so valid histories are valid.
 */
function simulate(spec: SimulationSpec): Model {
  const { regions } = spec;
  const logs = new Map(regions.map((r) => [r, [] as StoredRecord[]]));
  const clocks = new Map(regions.map((r) => [r, 0n]));
  const written = new Map(regions.map((r) => [r, [] as StoredRecord[]]));
  const delivered = new Map<string, number>();
  const produces: ProduceRecord[] = [];
  const physicalMs = (step: number, regionIndex: number): number => START_MS + step + (spec.skewMs?.[regionIndex] ?? 0);
  for (let step = 0; ; step++) {
    const events = possibleEvents(spec, written, delivered);
    if (events.length === 0) break;
    const choice = spec.schedule[step] ?? 0;
    const event = events[choice % events.length] as Event;
    const log = logs.get(event.region) as StoredRecord[];
    const regionIndex = regions.indexOf(event.region);
    if (event.type === 'write') {
      const index = (written.get(event.region) as StoredRecord[]).length;
      const hlc = hlcTick(clocks.get(event.region) as bigint, physicalMs(step, regionIndex));
      clocks.set(event.region, hlc);
      const offset = log.length;
      const entry: StoredRecord = { region: event.region, topic: TOPIC, offset, originRegion: event.region, originPosition: offset, producer: `canary-${event.region}`, sequenceId: index, payload: `${event.region}-${index}`, hlc };
      log.push(entry);
      (written.get(event.region) as StoredRecord[]).push(entry);
      const acked = !spec.unackedStored?.has(`${event.region}:${index}`);
      produces.push(acked ? ackedProduce(entry, step) : { region: event.region, topic: TOPIC, producer: entry.producer, sequenceId: index, payload: entry.payload, acked: false, atMs: START_MS + step });
    } else {
      const link = `${event.origin}->${event.region}`;
      const count = delivered.get(link) ?? 0;
      const original = (written.get(event.origin) as StoredRecord[])[count] as StoredRecord;
      delivered.set(link, count + 1);
      const hlc = hlcReceive(clocks.get(event.region) as bigint, original.hlc, physicalMs(step, regionIndex), Number.MAX_SAFE_INTEGER);
      clocks.set(event.region, hlc);
      log.push({ ...original, region: event.region, offset: log.length });
    }
  }
  regions.forEach((region, i) => {
    const stored = (written.get(region) as StoredRecord[]).length;
    for (let k = 0; k < (spec.unackedUnstored?.[i] ?? 0); k++) {
      produces.push({ region, topic: TOPIC, producer: `canary-${region}`, sequenceId: stored + k, payload: `${region}-${stored + k}`, acked: false, atMs: START_MS });
    }
  });
  return { regions, produces, logs };
}

type Event = { type: 'write'; region: string } | { type: 'deliver'; region: string; origin: string };

function possibleEvents(spec: SimulationSpec, written: Map<string, StoredRecord[]>, delivered: Map<string, number>): Event[] {
  const events: Event[] = [];
  spec.regions.forEach((region, i) => {
    if ((written.get(region) as StoredRecord[]).length < (spec.writesPerRegion[i] ?? 0)) events.push({ type: 'write', region });
    for (const origin of spec.regions) {
      if (origin === region) continue;
      const available = (written.get(origin) as StoredRecord[]).length;
      if ((delivered.get(`${origin}->${region}`) ?? 0) < available) events.push({ type: 'deliver', region, origin });
    }
  });
  return events;
}

/** What the workload records for an acked send (see workload.ts). */
function ackedProduce(entry: StoredRecord, step: number): ProduceRecord {
  return {
    region: entry.region,
    topic: entry.topic,
    producer: entry.producer,
    sequenceId: entry.sequenceId,
    payload: entry.payload,
    acked: true,
    originRegion: entry.originRegion,
    originPosition: entry.originPosition,
    offset: entry.offset,
    hlc: entry.hlc,
    atMs: START_MS + step,
  };
}

function record(model: Model): History {
  const history = new History();
  for (const produce of model.produces) history.recordProduce(produce);
  for (const log of model.logs.values()) for (const entry of log) history.recordStored(entry);
  return history;
}

function check(model: Model, options: { allowedRegions?: (topic: string) => string[] } = {}): Violation[] {
  return checkHistory(record(model), { regions: model.regions, ...options });
}

/** A fixed 3-region run: five writes per region, interleaved with deliveries. */
function baseModel(overrides: Partial<SimulationSpec> = {}): Model {
  const schedule = Array.from({ length: 200 }, (_, i) => (i * 7 + 3) % 11);
  return simulate({ regions: REGIONS, writesPerRegion: [5, 5, 5], schedule, skewMs: [0, 40, -25], ...overrides });
}

function logOf(model: Model, region: string): StoredRecord[] {
  return model.logs.get(region) as StoredRecord[];
}

/** The origin position of `origin`'s write with `sequenceId` (its n-th write). */
function positionOf(model: Model, origin: string, sequenceId: number): number {
  const entry = logOf(model, origin).find((e) => e.originRegion === origin && e.sequenceId === sequenceId);
  if (!entry) throw new Error(`${origin} wrote no sequence ${sequenceId}`);
  return entry.originPosition;
}

function indexOfEntry(log: StoredRecord[], originRegion: string, originPosition: number): number {
  const index = log.findIndex((e) => e.originRegion === originRegion && e.originPosition === originPosition);
  if (index === -1) throw new Error(`no ${originRegion}:${originPosition} in the log`);
  return index;
}

/** Removes one entry and renumbers the rest, as a log that never stored it would read. */
function removeEntry(log: StoredRecord[], index: number): StoredRecord {
  const [removed] = log.splice(index, 1);
  log.forEach((e, i) => (e.offset = i));
  return removed as StoredRecord;
}

function invariantsOf(violations: Violation[]): InvariantNumber[] {
  return [...new Set(violations.map((v) => v.invariant))].sort();
}

function kindsOf(violations: Violation[]): string[] {
  return [...new Set(violations.map((v) => v.kind))].sort();
}

// ---------------------------------------------------------------------------------------
// A correct history

test('history checker: a correct 3-region history (interleaved writes and deliveries, skewed clocks) has no violations', (t) => {
  const model = baseModel({ unackedStored: new Set(['beijing:2']), unackedUnstored: [1, 0, 2] });
  // The simulation must really interleave, or the order checks would be trivial.
  const beijingOrigins = logOf(model, 'beijing').map((e) => e.originRegion);
  t.true(new Set(beijingOrigins.slice(0, 8)).size >= 2);
  const violations = check(model, { allowedRegions: () => REGIONS });
  t.deepEqual(violations, [], formatViolations(violations));
});

test('history checker: an empty history has no violations', (t) => {
  t.deepEqual(checkHistory(new History(), { regions: REGIONS }), []);
});

test('history checker: a resend acked as a duplicate (offset -1, HLC 0) is matched by producer and sequence id', (t) => {
  const model = baseModel();
  const original = model.produces.find((p) => p.region === 'shenzhen' && p.sequenceId === 3) as ProduceRecord;
  model.produces.push({ ...original, originPosition: -1, offset: -1, hlc: 0n });
  t.deepEqual(check(model), []);
});

// ---------------------------------------------------------------------------------------
// Invariant 1: acked entries are never lost

test('invariant 1: an acked entry missing from one region is reported as lost, with its position', (t) => {
  const model = baseModel();
  const beijing = logOf(model, 'beijing');
  removeEntry(beijing, indexOfEntry(beijing, 'shanghai', positionOf(model, 'shanghai', 2)));
  const violations = check(model);
  const lost = violations.filter((v) => v.kind === 'lost');
  t.is(lost.length, 1, formatViolations(violations));
  t.like(lost[0], { invariant: 1, region: 'beijing', topic: TOPIC });
  t.regex(lost[0]?.message ?? '', /1 acked entry of origin shanghai missing: positions \d+/);
  // The same entry is also missing from the set of global ids that the others agree on.
  t.true(violations.some((v) => v.kind === 'missing-in-region' && v.invariant === 2));
});

test('invariant 1: a region never read at all loses every acked entry; losses are summarised as ranges', (t) => {
  const model = baseModel();
  model.logs.delete('shenzhen');
  const violations = check(model);
  const lost = violations.filter((v) => v.kind === 'lost');
  t.is(lost.length, 3, 'one violation per origin');
  t.true(lost.every((v) => v.invariant === 1 && v.region === 'shenzhen'));
  t.true(lost.some((v) => /5 acked entries of origin beijing missing: positions \d+/.test(v.message)));
});

test('invariant 1: unacked produces that were never stored are not lost', (t) => {
  const model = baseModel({ unackedUnstored: [3, 3, 3] });
  t.deepEqual(check(model), []);
});

test('invariant 1: a stored payload that differs from what was acked is reported', (t) => {
  const model = baseModel();
  for (const log of model.logs.values()) {
    const entry = log[indexOfEntry(log, 'beijing', positionOf(model, 'beijing', 1))] as StoredRecord;
    entry.payload = 'tampered';
  }
  const violations = check(model);
  t.deepEqual(invariantsOf(violations), [1]);
  t.deepEqual(kindsOf(violations), ['ack-mismatch']);
  t.is(violations.length, 3, 'one per region');
  t.regex(violations[0]?.message ?? '', /payload "beijing-1" → "tampered"/);
});

test('invariant 1: a gap in the offsets read is reported, with the missing range', (t) => {
  const model = baseModel();
  const shanghai = logOf(model, 'shanghai');
  // Offsets 4 and 5 were not read, but every entry is still there under another offset.
  for (const entry of shanghai) if (entry.offset >= 4) entry.offset += 2;
  const violations = check(model).filter((v) => v.kind === 'offset-gap');
  t.is(violations.length, 1);
  t.like(violations[0], { invariant: 1, region: 'shanghai', offsets: [3, 6] });
  t.regex(violations[0]?.message ?? '', /offsets 4–5 are missing/);
});

// ---------------------------------------------------------------------------------------
// Invariant 2: exactly once, same global ids everywhere

test('invariant 2: a global id stored twice in one region is a duplicate', (t) => {
  const model = baseModel();
  const beijing = logOf(model, 'beijing');
  const copy = { ...(beijing[3] as StoredRecord), offset: beijing.length };
  beijing.push(copy);
  const violations = check(model);
  const duplicates = violations.filter((v) => v.kind === 'duplicate-global-id');
  t.is(duplicates.length, 1, formatViolations(violations));
  t.like(duplicates[0], { invariant: 2, region: 'beijing', offsets: [3, beijing.length - 1] });
});

test('invariant 2: an offset read twice is reported as a repeat', (t) => {
  const model = baseModel();
  const shenzhen = logOf(model, 'shenzhen');
  shenzhen.splice(5, 0, { ...(shenzhen[4] as StoredRecord) });
  const violations = check(model);
  t.true(violations.some((v) => v.kind === 'offset-repeat' && v.invariant === 2 && v.region === 'shenzhen'));
});

test('invariant 2: an unacked entry present in one region only is a set difference, not a loss', (t) => {
  const model = baseModel({ unackedStored: new Set(['shenzhen:4']) });
  const position = positionOf(model, 'shenzhen', 4);
  for (const region of ['shanghai', 'beijing']) {
    const log = logOf(model, region);
    removeEntry(log, indexOfEntry(log, 'shenzhen', position));
  }
  const violations = check(model);
  t.deepEqual(invariantsOf(violations), [2], formatViolations(violations));
  t.deepEqual(kindsOf(violations), ['missing-in-region']);
  t.deepEqual(violations.map((v) => v.region).sort(), ['beijing', 'shanghai']);
  t.regex(violations[0]?.message ?? '', new RegExp(`1 entry of origin shenzhen held by shenzhen missing: positions ${position}`));
  t.true(violations[0]?.diff?.actual.includes('[(missing)]'));
});

test('invariant 2: an unacked produce stored twice (resent to another region) is reported as a duplicate sequence', (t) => {
  const model = baseModel({ unackedStored: new Set(['shanghai:4']) });
  // The producer gave up on shanghai and resent sequence 4 through beijing, which stored it
  // as its own write: two global ids for one send.
  const original = logOf(model, 'shanghai').find((e) => e.originRegion === 'shanghai' && e.sequenceId === 4) as StoredRecord;
  const originPosition = logOf(model, 'beijing').length;
  for (const region of REGIONS) {
    const log = logOf(model, region);
    log.push({ ...original, region, offset: log.length, originRegion: 'beijing', originPosition, hlc: original.hlc + 1_000_000n });
  }
  const violations = check(model);
  const duplicates = violations.filter((v) => v.kind === 'duplicate-sequence');
  t.is(duplicates.length, 1, formatViolations(violations));
  t.is(duplicates[0]?.invariant, 2);
  t.regex(duplicates[0]?.message ?? '', /producer canary-shanghai sequence 4 \(unacked\) is stored under 2 global ids/);
});

test('invariant 2: an entry whose producer differs between regions is reported', (t) => {
  const model = baseModel();
  const beijing = logOf(model, 'beijing');
  const index = beijing.findIndex((e) => e.originRegion === 'shenzhen');
  beijing[index] = { ...(beijing[index] as StoredRecord), producer: 'someone-else' };
  const violations = check(model);
  t.true(violations.some((v) => v.kind === 'content-differs' && v.invariant === 2 && v.region !== undefined));
});

// ---------------------------------------------------------------------------------------
// Invariant 3: order within one origin

test('invariant 3: two entries of one origin swapped in one region break its order, with a diff', (t) => {
  const model = baseModel();
  const shenzhen = logOf(model, 'shenzhen');
  const first = indexOfEntry(shenzhen, 'shanghai', positionOf(model, 'shanghai', 1));
  const second = indexOfEntry(shenzhen, 'shanghai', positionOf(model, 'shanghai', 3));
  const a = shenzhen[first] as StoredRecord;
  const b = shenzhen[second] as StoredRecord;
  shenzhen[first] = { ...b, offset: a.offset };
  shenzhen[second] = { ...a, offset: b.offset };
  const violations = check(model);
  t.true(invariantsOf(violations).includes(3), formatViolations(violations));
  const order = violations.find((v) => v.kind === 'origin-order');
  t.like(order, { invariant: 3, region: 'shenzhen' });
  const differs = violations.find((v) => v.kind === 'origin-sequence-differs');
  t.like(differs, { invariant: 3, region: 'shenzhen' });
  t.truthy(differs?.diff);
  t.notDeepEqual(differs?.diff?.expected, differs?.diff?.actual);
  t.false(violations.some((v) => v.kind === 'lost' || v.kind === 'missing-in-region'), 'nothing is missing, only reordered');
});

test('invariant 3: a producer sequence going backwards within one origin is reported', (t) => {
  const model = baseModel();
  for (const log of model.logs.values()) {
    for (const entry of log) {
      if (entry.originRegion === 'beijing' && entry.sequenceId === 3) entry.sequenceId = 1;
    }
  }
  for (const produce of model.produces) if (produce.region === 'beijing' && produce.sequenceId === 3) produce.sequenceId = 1;
  const violations = check(model);
  t.true(violations.some((v) => v.kind === 'producer-order' && v.invariant === 3), formatViolations(violations));
});

test('invariant 3: offsets read out of order are reported', (t) => {
  const model = baseModel();
  const beijing = logOf(model, 'beijing');
  const [moved] = beijing.splice(2, 1);
  beijing.push(moved as StoredRecord);
  t.true(check(model).some((v) => v.kind === 'offset-backwards' && v.invariant === 3));
});

// ---------------------------------------------------------------------------------------
// Invariant 4: residency

test('invariant 4: an entry stored outside the allowed regions is reported; without allowedRegions it is not', (t) => {
  const model = baseModel();
  const outside = logOf(model, 'shanghai').slice(0, 3).map((e) => ({ ...e, region: 'guangzhou' }));
  model.logs.set('guangzhou', outside);
  const violations = check(model, { allowedRegions: () => REGIONS });
  t.deepEqual(invariantsOf(violations), [4], formatViolations(violations));
  t.like(violations[0], { kind: 'residency', region: 'guangzhou', offsets: [0, 2] });
  t.regex(violations[0]?.message ?? '', /3 entries stored outside the allowed regions \[shanghai, beijing, shenzhen\]/);
  t.deepEqual(check(model), []);
});

test('invariant 4: a produce acked by a region outside the allowed set is reported', (t) => {
  const model = baseModel();
  const violations = check(model, { allowedRegions: () => ['shanghai', 'beijing'] });
  t.deepEqual(invariantsOf(violations), [4]);
  t.true(violations.some((v) => v.region === 'shenzhen' && /5 produces were acked outside/.test(v.message)));
});

test('invariant 4: regions outside the allowed set need not hold the topic', (t) => {
  // The topic lives in two regions of three; the third is not even read.
  const model = baseModel({ regions: ['shanghai', 'beijing'], writesPerRegion: [5, 5] });
  const violations = checkHistory(record(model), { regions: REGIONS, allowedRegions: () => ['shanghai', 'beijing'] });
  t.deepEqual(violations, [], formatViolations(violations));
});

// ---------------------------------------------------------------------------------------
// Invariant 5: HLC

test('invariant 5: an origin HLC that does not increase with position is reported in every region', (t) => {
  const model = baseModel();
  const shanghai = logOf(model, 'shanghai');
  const local = shanghai.filter((e) => e.originRegion === 'shanghai');
  const previous = local[1] as StoredRecord;
  const changed = local[2] as StoredRecord;
  for (const log of model.logs.values()) {
    const entry = log[indexOfEntry(log, 'shanghai', changed.originPosition)] as StoredRecord;
    entry.hlc = previous.hlc;
  }
  const violations = check(model);
  const perOrigin = violations.filter((v) => v.kind === 'hlc-origin-order');
  t.is(perOrigin.length, 3, formatViolations(violations));
  t.true(perOrigin.every((v) => v.invariant === 5));
});

/**
 * A local write in `log` that some earlier received entry is at least 2 ahead of, while
 * its own previous write is further behind: lowering its HLC below the received entry
 * breaks happened-before and nothing else.
 */
function happenedBeforeCandidate(log: StoredRecord[], region: string): { index: number; hlc: bigint } | undefined {
  let highest = 0n;
  let highestLocal = 0n;
  for (const [index, entry] of log.entries()) {
    if (entry.originRegion === region && highest - 1n > highestLocal) {
      return { index, hlc: highest - 1n };
    }
    if (entry.hlc > highest) highest = entry.hlc;
    if (entry.originRegion === region && entry.hlc > highestLocal) highestLocal = entry.hlc;
  }
  return undefined;
}

test('invariant 5: a local write with an HLC below an entry received before it breaks happened-before', (t) => {
  const model = baseModel();
  // Shenzhen's clock runs 25 ms behind, so what it receives is often ahead of its own writes.
  const shenzhen = logOf(model, 'shenzhen');
  const candidate = happenedBeforeCandidate(shenzhen, 'shenzhen');
  if (!candidate) return t.fail('the base history has no local write after a received entry that is ahead');
  const target = shenzhen[candidate.index] as StoredRecord;
  for (const log of model.logs.values()) (log[indexOfEntry(log, 'shenzhen', target.originPosition)] as StoredRecord).hlc = candidate.hlc;
  (model.produces.find((p) => p.region === 'shenzhen' && p.originPosition === target.originPosition) as ProduceRecord).hlc = candidate.hlc;
  const violations = check(model);
  t.deepEqual(kindsOf(violations), ['hlc-happened-before'], formatViolations(violations));
  t.like(violations[0], { invariant: 5, region: 'shenzhen' });
  t.is(violations[0]?.offsets?.[1], candidate.index);
});

test('invariant 5: one entry with different HLCs in two regions, or an ack that disagrees, is reported', (t) => {
  const model = baseModel();
  const shenzhen = logOf(model, 'shenzhen');
  const index = shenzhen.findIndex((e) => e.originRegion === 'beijing');
  (shenzhen[index] as StoredRecord).hlc -= 1n;
  const violations = check(model);
  t.true(violations.some((v) => v.kind === 'hlc-differs' && v.invariant === 5 && v.region === 'shenzhen'), formatViolations(violations));

  const acked = baseModel();
  (acked.produces.find((p) => p.acked && p.region === 'shanghai') as ProduceRecord).hlc = 42n;
  const ackViolations = check(acked);
  t.deepEqual(kindsOf(ackViolations), ['hlc-differs']);
  t.regex(ackViolations[0]?.message ?? '', /was acked with HLC 42 \(0\.42\)/);
});

// ---------------------------------------------------------------------------------------
// Options and the report

test('history checker: options are validated, naming the field', (t) => {
  t.throws(() => checkHistory(new History(), { regions: [] }), { message: /options\.regions/ });
  t.throws(() => checkHistory(new History(), { regions: ['a', 'a'] }), { message: /options\.regions names a region twice/ });
  t.throws(() => checkHistory(new History(), { regions: ['a'], violationsPerKindMax: 0 }), { message: /violationsPerKindMax/ });
});

test('history: a record with a non-integer offset (a string or bigint that slipped through) is refused', (t) => {
  const history = new History();
  const entry = logOf(baseModel(), 'shanghai')[0] as StoredRecord;
  t.throws(() => history.recordStored({ ...entry, offset: '3' as unknown as number }), { message: /recordStored: offset must be a safe integer/ });
  t.throws(() => history.recordProduce({ region: 'a', topic: TOPIC, producer: 'p', sequenceId: 1, payload: '', acked: true, atMs: 0 }), { message: /needs originRegion/ });
});

test('history: records are copied and exposed through accessors', (t) => {
  const history = new History();
  const entry = { ...(logOf(baseModel(), 'beijing')[0] as StoredRecord) };
  history.recordStored(entry);
  entry.payload = 'changed later';
  t.is(history.stored()[0]?.payload, 'beijing-0');
  history.recordConsume({ ...entry, subscription: 'sub', atMs: 1 });
  t.is(history.consumes().length, 1);
  t.deepEqual(history.storedIn('beijing', TOPIC).length, 1);
  t.deepEqual(history.topics(), [TOPIC]);
});

test('formatViolations: grouped by invariant, at most 20 listed per invariant, the rest counted, with diffs', (t) => {
  t.is(formatViolations([]), 'no invariant violations');
  const many: Violation[] = Array.from({ length: 25 }, (_, i) => ({ invariant: 2, kind: 'duplicate-global-id', region: 'beijing', topic: TOPIC, message: `duplicate number ${i}` }));
  const order: Violation = { invariant: 3, kind: 'origin-sequence-differs', region: 'shenzhen', topic: TOPIC, message: 'order differs', diff: { expected: ['…', '4', '[5]', '6'], actual: ['…', '4', '[6]', '5'] } };
  const text = formatViolations([order, ...many]);
  t.regex(text, /^26 invariant violations/);
  t.true(text.indexOf('invariant 2') < text.indexOf('invariant 3'), 'grouped in invariant order');
  t.regex(text, /invariant 2 \(every entry reaches every region exactly once\): 25 violations/);
  t.true(text.includes('duplicate number 19'));
  t.false(text.includes('duplicate number 20'));
  t.regex(text, /… and more: 5 duplicate-global-id/);
  t.regex(text, /expected: … 4 \[5\] 6\n\s+actual: {3}… 4 \[6\] 5/);
  t.regex(text, /\[origin-sequence-differs\] persistent:\/\/public\/default\/history @ shenzhen: order differs/);
});

test('formatViolations: a noisy kind does not hide a rare one of the same invariant', (t) => {
  const gaps: Violation[] = Array.from({ length: 500 }, (_, i) => ({ invariant: 1, kind: 'offset-gap', region: 'beijing', message: `gap ${i}` }));
  const lost: Violation = { invariant: 1, kind: 'lost', region: 'shenzhen', message: '1 acked entry of origin shanghai missing: positions 7' };
  const text = formatViolations([...gaps, lost]);
  t.true(text.includes('positions 7'));
  t.true(text.indexOf('[lost]') < text.indexOf('[offset-gap]'), 'losses first');
  t.regex(text, /… and more: 490 offset-gap/);
  t.true(text.split('\n').length < 20);
});

test('history checker: violations are bounded per kind, and the report counts the ones not listed', (t) => {
  const model = baseModel();
  const beijing = logOf(model, 'beijing');
  const copies = beijing.map((e, i) => ({ ...e, offset: beijing.length + i }));
  beijing.push(...copies);
  const violations = checkHistory(record(model), { regions: REGIONS, violationsPerKindMax: 4 });
  const duplicates = violations.filter((v) => v.kind === 'duplicate-global-id');
  t.is(duplicates.length, 5, 'four listed and one summary');
  t.is(duplicates.at(-1)?.omitted, beijing.length / 2 - 4);
  t.regex(formatViolations(violations), new RegExp(`invariant 2 \\(.*\\): ${beijing.length / 2} violations`));
});

test('history checker: 100,000 entries per region in 3 regions check clean', (t) => {
  const model = simulate({ regions: REGIONS, writesPerRegion: [34_000, 33_000, 33_000], schedule: Array.from({ length: 300_000 }, (_, i) => (i * 2_654_435_761) >>> 7) });
  t.is(logOf(model, 'shanghai').length, 100_000);
  const history = record(model);
  const startedMs = performance.now();
  const violations = checkHistory(history, { regions: REGIONS });
  const elapsedMs = performance.now() - startedMs;
  t.deepEqual(violations, [], formatViolations(violations));
  // Timing is reported, never asserted (timing belongs in benchmarks).
  t.log(`checked 300,000 stored entries in ${elapsedMs.toFixed(0)} ms`);
});

// ---------------------------------------------------------------------------------------
// Properties

const specArb = fc
  .record({
    regionCount: fc.integer({ min: 2, max: 4 }),
    writes: fc.array(fc.integer({ min: 2, max: 12 }), { minLength: 4, maxLength: 4 }),
    schedule: fc.array(fc.nat({ max: 1000 }), { maxLength: 200 }),
    skewMs: fc.array(fc.integer({ min: -50, max: 50 }), { minLength: 4, maxLength: 4 }),
    unacked: fc.array(fc.tuple(fc.nat({ max: 3 }), fc.nat({ max: 11 })), { maxLength: 4 }),
    unackedUnstored: fc.array(fc.nat({ max: 2 }), { minLength: 4, maxLength: 4 }),
  })
  .map(({ regionCount, writes, schedule, skewMs, unacked, unackedUnstored }): SimulationSpec => {
    const regions = ['shanghai', 'beijing', 'shenzhen', 'chengdu'].slice(0, regionCount);
    // Position 0 of each region stays acked, so that "drop an acked entry" always applies.
    const unackedStored = new Set(unacked.filter(([, index]) => index > 0).map(([r, index]) => `${regions[r % regionCount]}:${index}`));
    return { regions, writesPerRegion: writes.slice(0, regionCount), schedule, skewMs, unackedStored, unackedUnstored };
  });

test('property: random valid histories (interleavings, skewed clocks, lost acks) have no violations', (t) => {
  fc.assert(
    fc.property(specArb, fc.boolean(), (spec, withResidency) => {
      const model = simulate(spec);
      const violations = check(model, withResidency ? { allowedRegions: () => spec.regions } : {});
      if (violations.length > 0) t.log(formatViolations(violations));
      return violations.length === 0;
    }),
    { seed, numRuns: 200 },
  );
  t.pass();
});

type Mutation = 'drop-acked' | 'duplicate' | 'swap-same-origin' | 'hlc-backwards' | 'disallowed-region';

const EXPECTED_INVARIANT: Record<Mutation, InvariantNumber> = {
  'drop-acked': 1,
  'duplicate': 2,
  'swap-same-origin': 3,
  'hlc-backwards': 5,
  'disallowed-region': 4,
};

/** Applies one mutation, choosing what to break with `pick` (any natural number). */
function mutate(model: Model, mutation: Mutation, pick: (n: number) => number): void {
  const region = model.regions[pick(model.regions.length)] as string;
  const log = logOf(model, region);
  const origin = model.regions[pick(model.regions.length)] as string;
  // Every origin wrote at least two entries, and every log holds them all.
  const ofOrigin = log.map((e, i) => ({ e, i })).filter(({ e }) => e.originRegion === origin);
  switch (mutation) {
    case 'drop-acked': {
      const acked = ofOrigin.filter(({ e }) => model.produces.some((p) => p.acked && p.originRegion === e.originRegion && p.originPosition === e.originPosition));
      removeEntry(log, (acked[pick(acked.length)] as { i: number }).i);
      return;
    }
    case 'duplicate': {
      const copy = log[pick(log.length)] as StoredRecord;
      log.splice(pick(log.length + 1), 0, { ...copy });
      log.forEach((e, i) => (e.offset = i));
      return;
    }
    case 'swap-same-origin': {
      const first = pick(ofOrigin.length - 1);
      const second = first + 1 + pick(ofOrigin.length - first - 1);
      const a = ofOrigin[first] as { e: StoredRecord; i: number };
      const b = ofOrigin[second] as { e: StoredRecord; i: number };
      log[a.i] = { ...b.e, offset: a.e.offset };
      log[b.i] = { ...a.e, offset: b.e.offset };
      return;
    }
    case 'hlc-backwards': {
      const position = 1 + pick(ofOrigin.length - 1);
      const previous = (ofOrigin[position - 1] as { e: StoredRecord }).e;
      const changed = (ofOrigin[position] as { e: StoredRecord }).e;
      const hlc = previous.hlc - BigInt(pick(3));
      for (const other of model.logs.values()) {
        for (const entry of other) if (entry.originRegion === changed.originRegion && entry.originPosition === changed.originPosition) entry.hlc = hlc;
      }
      return;
    }
    case 'disallowed-region': {
      const copy = log[pick(log.length)] as StoredRecord;
      model.logs.set('guangzhou', [{ ...copy, region: 'guangzhou', offset: 0 }]);
      return;
    }
  }
}

test('property: a random single mutation of a valid history breaks the expected invariant', (t) => {
  const mutationArb = fc.constantFrom<Mutation>('drop-acked', 'duplicate', 'swap-same-origin', 'hlc-backwards', 'disallowed-region');
  fc.assert(
    fc.property(specArb, mutationArb, fc.array(fc.nat(), { minLength: 8, maxLength: 8 }), (spec, mutation, picks) => {
      const model = simulate(spec);
      let next = 0;
      mutate(model, mutation, (n) => (n <= 0 ? 0 : (picks[next++ % picks.length] as number) % n));
      const violations = check(model, { allowedRegions: () => spec.regions });
      const found = violations.some((v) => v.invariant === EXPECTED_INVARIANT[mutation]);
      if (!found) t.log(`${mutation}: ${formatViolations(violations)}`);
      return found;
    }),
    { seed, numRuns: 300 },
  );
  t.pass();
});
