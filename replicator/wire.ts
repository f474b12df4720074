// Conversions between replicated entries and replication.proto messages, as
// @grpc/proto-loader represents them (64-bit integers as decimal strings).
import type { ReplicatedEntry } from './log.ts';

export interface WireEntry {
  originRegion: string;
  originPosition: string | number;
  hlc: string | number;
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
