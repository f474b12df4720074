// Test support for conflict/ (not part of the public surface): a seeded PRNG and a small
// deterministic simulation of regions writing one key and replicating the writes to each
// other, with skewed physical clocks and the HLC rules of hybrid-logical-clock.ts. The
// histories it produces are causal by construction: a region's write carries the version
// vector of what it had received, and every receive merges the clock.
import { prng } from '../test-support/random.ts';
import { hlcReceive, hlcTick, type HlcTimestamp } from './hybrid-logical-clock.ts';
import { applyVersion, emptyKeyedState, nextVersionVector, type KeyedState, type KeyedVersion } from './keyed-state.ts';

export { prng };

export function randomInt(random: () => number, lowInclusive: number, highInclusive: number): number {
  return lowInclusive + Math.floor(random() * (highInclusive - lowInclusive + 1));
}

export function pickOne<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** A Fisher–Yates shuffle driven by `random`; returns a new array. */
export function shuffled<T>(random: () => number, items: readonly T[]): T[] {
  const result = items.slice();
  for (let i = result.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [result[i], result[j]] = [result[j] as T, result[i] as T];
  }
  return result;
}

export interface HistoryOptions {
  regions: readonly string[];
  /** Writes and deliveries before the final drain. */
  steps: number;
  key?: string;
  /** Chance that a step is a write (else a delivery, when one is pending). */
  writeProbability?: number;
  /** Largest physical clock offset of a region from the others, in ms. */
  clockSkewMsMax?: number;
  /** Chance that a delivery is followed by a duplicate delivery of an already received write. */
  redeliverProbability?: number;
}

/** Something that happened in a region, in the order it happened there. */
export type HistoryEvent =
  | { kind: 'write'; region: string; version: KeyedVersion; stateBefore: KeyedState }
  | { kind: 'deliver'; region: string; version: KeyedVersion; stateBefore: KeyedState };

export interface History {
  readonly regions: readonly string[];
  readonly key: string;
  /** Every write, in the order the simulation made them. */
  readonly writes: readonly KeyedVersion[];
  /** Every write and delivery, in simulation order. */
  readonly events: readonly HistoryEvent[];
  /** Each region's state after everything was delivered everywhere. */
  readonly finalStates: ReadonlyMap<string, KeyedState>;
}

interface RegionSim {
  name: string;
  physicalMs: number;
  clock: HlcTimestamp;
  state: KeyedState;
  nextPosition: number;
  received: KeyedVersion[];
}

const BASE_MS = 1_700_000_000_000;

function randomValue(random: () => number): Buffer | null {
  const roll = random();
  if (roll < 0.1) return null;
  if (roll < 0.2) return Buffer.from('not json');
  if (roll < 0.3) return Buffer.from(JSON.stringify({ other: 1 }));
  return Buffer.from(JSON.stringify({ balance: randomInt(random, 0, 6) }));
}

export function simulateKeyedHistory(seed: number, options: HistoryOptions): History {
  const random = prng(seed);
  const key = options.key ?? 'k';
  const writeProbability = options.writeProbability ?? 0.5;
  const skewMax = options.clockSkewMsMax ?? 20;
  const redeliver = options.redeliverProbability ?? 0;
  const regions = new Map<string, RegionSim>();
  for (const name of options.regions) {
    regions.set(name, {
      name,
      physicalMs: BASE_MS + randomInt(random, 0, skewMax),
      clock: 0n,
      state: emptyKeyedState(key),
      nextPosition: randomInt(random, 0, 3),
      received: [],
    });
  }
  // One FIFO queue per directed link: replication keeps each origin's order on a link.
  const links = new Map<string, KeyedVersion[]>();
  for (const from of options.regions) for (const to of options.regions) if (from !== to) links.set(`${from}>${to}`, []);
  const writes: KeyedVersion[] = [];
  const events: HistoryEvent[] = [];

  const tickPhysical = (region: RegionSim): void => {
    // Physical time mostly creeps, sometimes stalls (the logical counter then moves).
    region.physicalMs += randomInt(random, 0, 2);
  };
  const write = (region: RegionSim): void => {
    tickPhysical(region);
    region.clock = hlcTick(region.clock, region.physicalMs);
    const originPosition = region.nextPosition;
    // Positions are per-topic offsets shared with other keys and replicated entries: gaps.
    region.nextPosition += randomInt(random, 1, 3);
    const version: KeyedVersion = {
      key,
      value: randomValue(random),
      originRegion: region.name,
      originPosition,
      hlc: region.clock,
      vv: nextVersionVector(region.state, region.name, originPosition),
    };
    events.push({ kind: 'write', region: region.name, version, stateBefore: region.state });
    region.state = applyVersion(region.state, version);
    writes.push(version);
    for (const other of options.regions) if (other !== region.name) links.get(`${region.name}>${other}`)!.push(version);
  };
  const receive = (region: RegionSim, version: KeyedVersion): void => {
    tickPhysical(region);
    region.clock = hlcReceive(region.clock, version.hlc, region.physicalMs, Number.MAX_SAFE_INTEGER);
    events.push({ kind: 'deliver', region: region.name, version, stateBefore: region.state });
    region.state = applyVersion(region.state, version);
    region.received.push(version);
  };
  const deliver = (linkName: string): void => {
    const queue = links.get(linkName)!;
    const version = queue.shift()!;
    const region = regions.get(linkName.slice(linkName.indexOf('>') + 1))!;
    receive(region, version);
    if (random() < redeliver) receive(region, pickOne(random, region.received));
  };

  for (let step = 0; step < options.steps; step++) {
    const busy = [...links].filter(([, queue]) => queue.length > 0).map(([name]) => name);
    if (busy.length === 0 || random() < writeProbability) write(pickOne(random, [...regions.values()]));
    else deliver(pickOne(random, busy));
  }
  for (;;) {
    const busy = [...links].filter(([, queue]) => queue.length > 0).map(([name]) => name);
    if (busy.length === 0) break;
    deliver(pickOne(random, busy));
  }
  return {
    regions: options.regions,
    key,
    writes,
    events,
    finalStates: new Map([...regions].map(([name, region]) => [name, region.state])),
  };
}

/** True when `later`'s writer had seen `earlier` (happened-before between writes of the key). */
export function happenedBefore(earlier: KeyedVersion, later: KeyedVersion): boolean {
  if (earlier.originRegion === later.originRegion && earlier.originPosition === later.originPosition) return false;
  const seen = later.vv.get(earlier.originRegion);
  return seen !== undefined && seen >= earlier.originPosition;
}

/** A compact, order-sensitive description of a state, for equality checks. */
export function stateFingerprint(state: KeyedState): string {
  return state.versions.map((v) => `${v.originRegion}:${v.originPosition}@${v.hlc}`).join(' ');
}
