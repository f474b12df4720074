// Conversions between replicated entries and replication.proto messages, as
// @grpc/proto-loader represents them (64-bit integers as decimal strings).
import type { OriginFrontier, ReplicatedEntry, SubscriptionFrontier } from './log.ts';

export interface WireEntry {
  originRegion: string;
  originPosition: string | number;
  hlc: string | number | bigint;
  producerName: string;
  sequenceId: string | number;
  publishTimeMs: string | number;
  eventTimeMs: string | number;
  key: string;
  hasKey: boolean;
  properties: Record<string, string>;
  payload: Buffer;
}

export function toWire(e: ReplicatedEntry): WireEntry {
  return {
    originRegion: e.originRegion,
    originPosition: e.originPosition,
    hlc: e.hlc.toString(),
    producerName: e.producerName,
    sequenceId: e.sequenceId,
    publishTimeMs: e.publishTimeMs,
    eventTimeMs: e.eventTimeMs,
    key: e.key ?? '',
    hasKey: e.key !== undefined,
    properties: e.properties,
    payload: e.payload,
  };
}

export function fromWire(w: WireEntry): ReplicatedEntry {
  return {
    originRegion: w.originRegion,
    originPosition: Number(w.originPosition),
    hlc: BigInt(w.hlc),
    producerName: w.producerName,
    sequenceId: Number(w.sequenceId),
    publishTimeMs: Number(w.publishTimeMs),
    eventTimeMs: Number(w.eventTimeMs),
    key: w.hasKey ? w.key : undefined,
    properties: w.properties ?? {},
    payload: w.payload,
  };
}

export interface WireSubscriptionFrontier {
  name: string;
  origins: Record<string, { through: string | number; ackedRanges: Array<string | number> }>;
}

export function frontiersToWire(frontiers: SubscriptionFrontier[]): WireSubscriptionFrontier[] {
  return frontiers.map((f) => ({
    name: f.name,
    origins: Object.fromEntries(Object.entries(f.origins).map(([origin, o]) => [origin, { through: o.through, ackedRanges: o.acked.flat() }])),
  }));
}

/** Parses frontiers from the wire; malformed ones are dropped (the sender resends every interval). */
export function frontiersFromWire(wire: WireSubscriptionFrontier[] | undefined): SubscriptionFrontier[] {
  const out: SubscriptionFrontier[] = [];
  for (const f of wire ?? []) {
    if (typeof f.name !== 'string' || f.name.length === 0) continue;
    const origins: Record<string, OriginFrontier> = {};
    for (const [origin, o] of Object.entries(f.origins ?? {})) {
      const through = Number(o.through);
      const flat = (o.ackedRanges ?? []).map(Number);
      if (!Number.isSafeInteger(through) || through < -1 || flat.length % 2 !== 0 || flat.some((n) => !Number.isSafeInteger(n) || n < 0)) continue;
      const acked: Array<[number, number]> = [];
      for (let i = 0; i < flat.length; i += 2) {
        const first = flat[i] as number;
        const last = flat[i + 1] as number;
        if (last >= first) acked.push([first, last]);
      }
      origins[origin] = { through, acked };
    }
    out.push({ name: f.name, origins });
  }
  return out;
}
