// The table of a keyed topic: for every key, its maximal versions (a multi-value register,
// conflict/keyed-state.ts) and the value the namespace's conflict policy resolves them to.
//
// A local write is stamped with the version vector of what this region had seen of its
// key (property `admq.vv`), so every region can tell, for any two writes to a key, whether
// one had seen the other or they were concurrent. A replicated write is applied with the
// vector it carries; when it is concurrent with a version held here, the pair is resolved
// by the policy and, if this region is the pair's recorder, reported for the namespace's
// conflict feed. The state is the same in every region whatever the arrival order, so the
// table converges (DESIGN §10 invariant 6).
import {
  applyVersion,
  buildConflictRecord,
  detectConflicts,
  emptyKeyedState,
  formatVersionVector,
  nextVersionVector,
  parseVersionVector,
  recorderOf,
  resolve,
  versionVector,
  type ConflictPolicy,
  type ConflictRecord,
  type KeyedState,
  type KeyedVersion,
  type VersionVector,
} from '../../conflict/index.ts';
import type { Entry } from '../storage/entry-codec.ts';

/** The message property that carries a keyed write's version vector. */
export const VERSION_VECTOR_PROPERTY = 'admq.vv';

export interface TableRow {
  key: string;
  /** The resolved value; absent when the winner is a deletion (an empty payload). */
  value: Buffer | undefined;
  originRegion: string;
  originPosition: number;
  hlc: bigint;
  /** Concurrent versions still held beside the winner (0 once a later write saw them all). */
  concurrent: number;
}

export class KeyedTable {
  readonly #states = new Map<string, KeyedState>();
  conflictsDetected = 0;

  constructor(
    readonly topic: string,
    readonly region: string,
    private readonly policy: () => ConflictPolicy,
    /** A resolved concurrent pair that this region records in the conflict feed. */
    private readonly onConflict: (record: ConflictRecord) => void,
    private readonly warn: (line: string) => void,
  ) {}

  get size(): number {
    return this.#states.size;
  }

  /** A local write: stamps its version vector into its properties, then applies it. */
  stampLocal(entry: Entry): void {
    if (entry.key === undefined) return;
    const state = this.#states.get(entry.key) ?? emptyKeyedState(entry.key);
    const vv = nextVersionVector(state, this.region, entry.originPosition);
    entry.properties = { ...entry.properties, [VERSION_VECTOR_PROPERTY]: formatVersionVector(vv) };
    this.#states.set(entry.key, applyVersion(state, this.#version(entry, vv)));
  }

  /**
   * A stored entry from any region (a replicated write, or any entry when the table is
   * rebuilt from the log). `live` is false during a rebuild: conflicts found then were
   * recorded when they first happened.
   */
  apply(entry: Entry, live: boolean): void {
    if (entry.key === undefined) return;
    const vv = this.#vectorOf(entry);
    const state = this.#states.get(entry.key) ?? emptyKeyedState(entry.key);
    const version = this.#version(entry, vv);
    if (live && entry.originRegion !== this.region) {
      const policy = this.policy();
      for (const pair of detectConflicts(this.topic, state, version, policy)) {
        this.conflictsDetected++;
        if (recorderOf(pair) === this.region) this.onConflict(buildConflictRecord(pair));
      }
    }
    this.#states.set(entry.key, applyVersion(state, version));
  }

  /**
   * Compacted reads: whether a newer or winning version of the entry's key makes it
   * obsolete. Entries without a key are never superseded.
   */
  isSuperseded(entry: Entry): boolean {
    if (entry.key === undefined) return false;
    const state = this.#states.get(entry.key);
    if (!state) return false;
    const resolution = resolve(state, this.policy());
    if (!resolution) return false;
    return resolution.winner.originRegion !== entry.originRegion || resolution.winner.originPosition !== entry.originPosition;
  }

  rows(): TableRow[] {
    const policy = this.policy();
    const rows: TableRow[] = [];
    for (const state of this.#states.values()) {
      const resolution = resolve(state, policy);
      if (!resolution) continue;
      const w = resolution.winner;
      rows.push({ key: state.key, value: w.value ?? undefined, originRegion: w.originRegion, originPosition: w.originPosition, hlc: w.hlc, concurrent: resolution.losers.length });
    }
    return rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  #version(entry: Entry, vv: VersionVector): KeyedVersion {
    return {
      key: entry.key as string,
      value: entry.payload.length === 0 ? null : entry.payload,
      originRegion: entry.originRegion,
      originPosition: entry.originPosition,
      hlc: entry.hlc,
      vv,
    };
  }

  #vectorOf(entry: Entry): VersionVector {
    const text = entry.properties[VERSION_VECTOR_PROPERTY];
    const own = versionVector([[entry.originRegion, entry.originPosition]]);
    if (text === undefined) return own;
    try {
      const vv = parseVersionVector(text);
      // The write itself must be in its vector; a vector that lacks it was not made by admq.
      if ((vv.get(entry.originRegion) ?? -1) < entry.originPosition) throw new Error(`it does not cover the write itself`);
      return vv;
    } catch (error) {
      this.warn(`[${this.topic}] entry ${entry.originRegion}:${entry.originPosition} has a malformed ${VERSION_VECTOR_PROPERTY} (${(error as Error).message}); treated as concurrent with everything`);
      return own;
    }
  }
}
