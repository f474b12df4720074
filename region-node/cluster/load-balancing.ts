// The load manager's decisions, as a pure function: given the live brokers with their load
// reports, the current assignment of bundles to brokers, the bundles brokers asked for, and
// when each bundle last moved, which bundles go where. No I/O, no clock of its own; the
// leader (load-manager.ts) applies the moves.
//
// In order, each step working on the plan left by the one before:
// 1. Bundles assigned to a broker that is no longer live go to the least loaded broker
//    (always, however many: they are unavailable until then).
// 2. Bundles asked for (a lookup found them unassigned) go to the least loaded broker.
// 3. Bundle count: while the broker with the most bundles holds more than the average plus
//    `bundleCountSlack` and at least 2 more than the least loaded one, one of its bundles
//    moves there. This is what fills a broker that joined.
// 4. Throughput: a broker whose message rate is above average by more than
//    `throughputOverloadRatio` (and by at least `throughputOverloadMinMsgRate`) gives one
//    bundle to the broker with the lowest rate that can take one more bundle without
//    tripping step 3 (so the two rules never undo each other). One such move per round:
//    load reports lag, and the next round sees the effect.
// Steps 3 and 4 make at most `movesPerRoundMax` moves together and never move a bundle that
// they moved less than `moveCooldownMs` ago (the caller records only those moves), so a
// bundle does not bounce while load reports catch up.
//
// "Least loaded": fewest bundles in the plan, then lowest message rate, then lowest broker id
// (deterministic, so every replay of the same input gives the same plan).
import type { BrokerLoad } from './broker-registry.ts';

export interface BalancerBroker {
  brokerId: string;
  load: BrokerLoad;
}

export interface BalancerInput {
  /** Live brokers (registered, lease alive). */
  brokers: readonly BalancerBroker[];
  /** Bundle → broker id, as assigned now. */
  assignments: ReadonlyMap<string, string>;
  /** Bundles that some broker asked to have placed (may already be assigned). */
  requested: readonly string[];
  /** Bundle → time (the leader's monotonic ms) of its last move. */
  movedAtMs: ReadonlyMap<string, number>;
  nowMs: number;
  /**
   * Broker → since when (leader's ms) it has been overloaded without a break (see
   * overloadedBrokers). Given, a throughput move needs throughputOverloadSustainMs of it;
   * absent, a single overloaded report is enough.
   */
  overloadedSinceMs?: ReadonlyMap<string, number>;
}

export interface BalancerSettings {
  /** Bundles above the average a broker may hold before step 3 moves one. Default 1. */
  bundleCountSlack: number;
  /** A broker is overloaded above average rate × (1 + this). Default 0.5. */
  throughputOverloadRatio: number;
  /** …and only if it is at least this many msg/s above the average. Default 1000. */
  throughputOverloadMinMsgRate: number;
  /** A bundle that moved is left alone by steps 3 and 4 for this long. Default 30,000 ms. */
  moveCooldownMs: number;
  /** Moves of steps 3 and 4 per round. Default 4. */
  movesPerRoundMax: number;
  /**
   * How long a broker must stay overloaded before step 4 moves a bundle off it. A move
   * stops the bundle's topics while the new owner rebuilds them, so a short burst is not
   * worth one. Default 10,000 ms.
   */
  throughputOverloadSustainMs: number;
}

export const BALANCER_SETTINGS_DEFAULT: BalancerSettings = {
  bundleCountSlack: 1,
  throughputOverloadRatio: 0.5,
  throughputOverloadMinMsgRate: 1000,
  moveCooldownMs: 30_000,
  movesPerRoundMax: 4,
  throughputOverloadSustainMs: 10_000,
};

function isOverloaded(msgRate: number, averageRate: number, settings: BalancerSettings): boolean {
  return msgRate > averageRate * (1 + settings.throughputOverloadRatio) && msgRate - averageRate >= settings.throughputOverloadMinMsgRate;
}

/** The brokers above the throughput rule's threshold now (the leader tracks since when). */
export function overloadedBrokers(brokers: readonly BalancerBroker[], settings: BalancerSettings = BALANCER_SETTINGS_DEFAULT): Set<string> {
  const rates = brokers.map((b) => ({ id: b.brokerId, rate: finiteOrZero(b.load.msgRateIn) + finiteOrZero(b.load.msgRateOut) }));
  const average = rates.reduce((sum, r) => sum + r.rate, 0) / Math.max(1, rates.length);
  return new Set(rates.filter((r) => rates.length > 1 && isOverloaded(r.rate, average, settings)).map((r) => r.id));
}

export type MoveReason = 'broker-gone' | 'requested' | 'bundle-count' | 'throughput';

export interface BundleMove {
  bundle: string;
  /** The broker it was assigned to, if any. */
  from: string | undefined;
  to: string;
  reason: MoveReason;
}

interface Candidate {
  brokerId: string;
  bundles: Set<string>;
  msgRate: number;
  bundleMsgRates: Record<string, number> | undefined;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function planMoves(input: BalancerInput, settings: BalancerSettings = BALANCER_SETTINGS_DEFAULT): BundleMove[] {
  const moves: BundleMove[] = [];
  if (input.brokers.length === 0) return moves;
  const candidates = new Map<string, Candidate>();
  for (const broker of [...input.brokers].sort((a, b) => byName(a.brokerId, b.brokerId))) {
    candidates.set(broker.brokerId, {
      brokerId: broker.brokerId,
      bundles: new Set(),
      msgRate: finiteOrZero(broker.load.msgRateIn) + finiteOrZero(broker.load.msgRateOut),
      bundleMsgRates: broker.load.bundleMsgRates,
    });
  }
  const orphans: [string, string][] = [];
  for (const [bundle, brokerId] of [...input.assignments].sort(([a], [b]) => byName(a, b))) {
    const candidate = candidates.get(brokerId);
    if (candidate) candidate.bundles.add(bundle);
    else orphans.push([bundle, brokerId]);
  }
  const all = [...candidates.values()];
  const least = (eligible: (c: Candidate) => boolean = () => true): Candidate | undefined => {
    let best: Candidate | undefined;
    for (const c of all) {
      if (!eligible(c)) continue;
      if (best === undefined || c.bundles.size < best.bundles.size || (c.bundles.size === best.bundles.size && c.msgRate < best.msgRate)) best = c;
    }
    return best;
  };
  const move = (bundle: string, from: Candidate | undefined, fromId: string | undefined, to: Candidate, reason: MoveReason): void => {
    from?.bundles.delete(bundle);
    to.bundles.add(bundle);
    const rate = from?.bundleMsgRates?.[bundle];
    if (from !== undefined && rate !== undefined && Number.isFinite(rate)) {
      from.msgRate -= rate;
      to.msgRate += rate;
    }
    moves.push({ bundle, from: fromId, to: to.brokerId, reason });
  };

  // 1. Bundles of brokers that are gone.
  for (const [bundle, brokerId] of orphans) move(bundle, undefined, brokerId, least() as Candidate, 'broker-gone');

  // 2. Bundles asked for and not yet assigned.
  for (const bundle of [...new Set(input.requested)].sort(byName)) {
    if (!input.assignments.has(bundle)) move(bundle, undefined, undefined, least() as Candidate, 'requested');
  }

  const cooling = (bundle: string): boolean => {
    const at = input.movedAtMs.get(bundle);
    return at !== undefined && input.nowMs - at < settings.moveCooldownMs;
  };
  const rateOf = (c: Candidate, bundle: string): number => c.bundleMsgRates?.[bundle] ?? 0;
  const totalBundles = all.reduce((sum, c) => sum + c.bundles.size, 0);
  const averageBundles = totalBundles / all.length;
  let balancingMoves = 0;

  // 3. Bundle count.
  while (balancingMoves < settings.movesPerRoundMax) {
    let source: Candidate | undefined;
    for (const c of all) {
      if (source === undefined || c.bundles.size > source.bundles.size || (c.bundles.size === source.bundles.size && c.msgRate > source.msgRate)) source = c;
    }
    const target = least();
    if (source === undefined || target === undefined || source === target) break;
    if (!(source.bundles.size > averageBundles + settings.bundleCountSlack && source.bundles.size - target.bundles.size >= 2)) break;
    // Move the quietest bundle: count balancing should disturb as little traffic as it can.
    const bundle = [...source.bundles].filter((b) => !cooling(b)).sort((a, b) => rateOf(source, a) - rateOf(source, b) || byName(a, b))[0];
    if (bundle === undefined) break;
    move(bundle, source, source.brokerId, target, 'bundle-count');
    balancingMoves++;
  }

  // 4. Throughput (one move per round).
  if (balancingMoves < settings.movesPerRoundMax && all.length > 1) {
    const averageRate = all.reduce((sum, c) => sum + c.msgRate, 0) / all.length;
    let source: Candidate | undefined;
    for (const c of all) if (source === undefined || c.msgRate > source.msgRate) source = c;
    if (
      source !== undefined &&
      source.bundles.size >= 2 &&
      isOverloaded(source.msgRate, averageRate, settings) &&
      (input.overloadedSinceMs === undefined || input.nowMs - (input.overloadedSinceMs.get(source.brokerId) ?? input.nowMs) >= settings.throughputOverloadSustainMs)
    ) {
      const from = source;
      let target: Candidate | undefined;
      for (const c of all) {
        if (c === from || c.bundles.size + 1 > averageBundles + settings.bundleCountSlack) continue;
        if (target === undefined || c.msgRate < target.msgRate || (c.msgRate === target.msgRate && c.bundles.size < target.bundles.size)) target = c;
      }
      if (target !== undefined) {
        const gap = from.msgRate - target.msgRate;
        const movable = [...from.bundles].filter((b) => !cooling(b));
        // With per-bundle rates: the busiest bundle that does not simply swap the overload
        // (rate below the gap). Without: the first by name.
        const bundle = from.bundleMsgRates === undefined
          ? movable.sort(byName)[0]
          : movable.filter((b) => rateOf(from, b) < gap).sort((a, b) => rateOf(from, b) - rateOf(from, a) || byName(a, b))[0];
        if (bundle !== undefined) move(bundle, from, from.brokerId, target, 'throughput');
      }
    }
  }
  return moves;
}

function finiteOrZero(value: number): number {
  return Number.isFinite(value) ? value : 0;
}
