// Scratch directories leave with their owner or with the process, unless ADMQ_KEEP_TEST_DATA=1.
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import test from 'ava';

const run = promisify(execFile);
const MODULE = new URL('./temp-dir.ts', import.meta.url).href;
// Makes two directories, removes the first at once, prints both paths, and exits.
const CHILD = `
import { existsSync } from 'node:fs';
import { removeTempDir, tempDir } from '${MODULE}';
const early = tempDir('admq-temp-dir-test-');
const late = tempDir('admq-temp-dir-test-');
removeTempDir(early);
console.log(JSON.stringify({ early, late, earlyGoneAtOnce: !existsSync(early), lateThereBeforeExit: existsSync(late) }));
`;

async function child(env: NodeJS.ProcessEnv): Promise<{ early: string; late: string; earlyGoneAtOnce: boolean; lateThereBeforeExit: boolean; stderr: string }> {
  const { stdout, stderr } = await run(process.execPath, ['--import=tsx', '--input-type=module', '--eval', CHILD], { env: { ...process.env, ...env } });
  return { ...(JSON.parse(stdout) as { early: string; late: string; earlyGoneAtOnce: boolean; lateThereBeforeExit: boolean }), stderr };
}

test('tempDir: removeTempDir removes at once, the rest go when the process exits', async (t) => {
  const r = await child({ ADMQ_KEEP_TEST_DATA: '' });
  t.true(r.earlyGoneAtOnce);
  t.true(r.lateThereBeforeExit);
  t.false(existsSync(r.late), `${r.late} outlived its process`);
});

test('tempDir: ADMQ_KEEP_TEST_DATA=1 keeps every directory and names them on exit', async (t) => {
  const r = await child({ ADMQ_KEEP_TEST_DATA: '1' });
  t.teardown(() => {
    for (const dir of [r.early, r.late]) rmSync(dir, { recursive: true, force: true });
  });
  t.false(r.earlyGoneAtOnce);
  t.true(existsSync(r.early) && existsSync(r.late));
  t.true(r.stderr.includes(r.early) && r.stderr.includes(r.late), r.stderr);
});
