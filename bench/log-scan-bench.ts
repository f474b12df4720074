// A replication link passing over entries it does not carry (issue 4): the entries of
// origins routed over another link, read from disk. Compares the full read (decode every
// entry, as links did before) with skipOrigins (checksums verified, origins only).
import { packHlc } from '../conflict/index.ts';
import { LogStore } from '../region-node/storage/log-store.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';

const TOPIC = 'persistent://public/default/bench-log-scan';

export interface LogScanBenchResult {
  entries: number;
  payloadBytes: number;
  rounds: Array<{ readMs: number; readCpuMs: number; skipMs: number; skipCpuMs: number }>;
}

function timed(run: () => void): { ms: number; cpuMs: number } {
  const started = performance.now();
  const cpu = process.cpuUsage();
  run();
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000 };
}

export async function runLogScanBench(options: { quick?: boolean } = {}): Promise<LogScanBenchResult> {
  const dataDir = tempDir('admq-bench-log-scan-');
  const entries = options.quick ? 20_000 : 100_000;
  const payloadBytes = 1024;
  const now = Date.now();
  const storeOptions = { dataDir, region: 'beijing', durability: 'none' as const, readPhysicalMs: () => now, maxClockOffsetMs: 500 };
  try {
    // What a region holds after a peer's backlog arrived: entries of origin shanghai, in
    // chunks of 1,000 (one per replicated batch).
    const writer = LogStore.open(storeOptions);
    const log = writer.openLog(1, TOPIC);
    const payload = Buffer.alloc(payloadBytes, 7);
    for (let position = 0; position < entries; ) {
      const batch = Array.from({ length: 1000 }, () => {
        position++;
        return { offset: 0, originRegion: 'shanghai', originPosition: position, hlc: packHlc(now - 1000, position % 60_000), producerName: 'p', sequenceId: position, publishTimeMs: now - 1000, eventTimeMs: 0, key: undefined, properties: { a: 'b' }, payload };
      });
      await writer.appendReplicated(log, batch);
    }
    await writer.close();
    const rounds: LogScanBenchResult['rounds'] = [];
    for (let round = 0; round < 3; round++) {
      // A freshly opened store each time: every chunk comes from disk, none from the cache.
      const reading = LogStore.open(storeOptions);
      const readLog = reading.openLog(1, TOPIC);
      const read = timed(() => {
        for (let at = 0; at < entries; ) {
          const batch = reading.read(readLog, at, 1000);
          at = (batch[batch.length - 1]?.offset ?? entries) + 1;
        }
      });
      await reading.close();
      const skipping = LogStore.open(storeOptions);
      const skipLog = skipping.openLog(1, TOPIC);
      const skip = timed(() => {
        for (let at = 0; at < entries; ) at = skipping.skipOrigins(skipLog, at, 20_000, (origin) => origin !== 'beijing');
      });
      await skipping.close();
      rounds.push({ readMs: read.ms, readCpuMs: read.cpuMs, skipMs: skip.ms, skipCpuMs: skip.cpuMs });
    }
    return { entries, payloadBytes, rounds };
  } finally {
    removeTempDir(dataDir);
  }
}

export function formatLogScanBench(r: LogScanBenchResult): string {
  const f = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  return [
    `## Passing over ${f(r.entries)} entries of another origin (${f(r.payloadBytes)} B payloads, chunks of 1,000, from disk)`,
    '',
    '| round | full read (decode every entry) | skipOrigins (checksums, origins only) |',
    '|---|---|---|',
    ...r.rounds.map((x, i) => `| ${i + 1} | ${f(x.readMs)} ms (CPU ${f(x.readCpuMs)} ms) | ${f(x.skipMs)} ms (CPU ${f(x.skipCpuMs)} ms) |`),
    '',
  ].join('\n');
}
