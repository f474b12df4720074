// Scratch directories for tests and benchmarks. Each is removed when its owner is done
// with it (`removeTempDir`) or, at the latest, when this process exits, so that repeated
// test and benchmark runs do not fill the disk: a multi-region run leaves up to a
// gigabyte of LMDB files. Set ADMQ_KEEP_TEST_DATA=1 to keep them for a look after a
// failure; their paths are then printed on exit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const owned = new Set<string>();

function keep(): boolean {
  return process.env.ADMQ_KEEP_TEST_DATA === '1';
}

process.once('exit', () => {
  if (owned.size === 0) return;
  if (keep()) console.error(`ADMQ_KEEP_TEST_DATA=1: kept ${[...owned].join(', ')}`);
  else for (const path of owned) rmSync(path, { recursive: true, force: true });
});

/** A new, empty directory under the OS temp directory whose name starts with `prefix`. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  owned.add(dir);
  return dir;
}

/** Removes a directory made by `tempDir` now (kept, like all of them, with ADMQ_KEEP_TEST_DATA=1). */
export function removeTempDir(dir: string): void {
  if (keep()) return;
  rmSync(dir, { recursive: true, force: true });
  owned.delete(dir);
}
