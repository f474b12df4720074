// The storage node's ledger store on real LMDB files: durable adds, reads, last-add-
// confirmed, fencing against the old writer, and no acked add lost to a kill -9.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { waitFor } from '../../test-support/processes.ts';
import { tempDir } from '../../test-support/temp-dir.ts';
import { BookieStore, type BookieError } from './bookie-store.ts';

const dir = () => tempDir('admq-bookie-');

test('bookie: adds are readable, in any arrival order; the LAC is the highest carried; state survives a reopen', async (t) => {
  const path = dir();
  const store = BookieStore.open(path);
  await Promise.all([3, 1, 0, 2].map((e) => store.add(1, e, e - 1, Buffer.from(`e${e}`), 'w')));
  t.is(store.read(1, 2).toString(), 'e2');
  t.deepEqual(store.readLac(1), { lac: 2, last: 3, fenced: false });
  t.is((t.throws(() => store.read(1, 9)) as BookieError).code, 'ADMQ_ERR_NO_SUCH_ENTRY');
  t.is((t.throws(() => store.readLac(42)) as BookieError).code, 'ADMQ_ERR_NO_SUCH_LEDGER');
  await store.close();
  const again = BookieStore.open(path);
  t.teardown(() => again.close());
  t.is(again.read(1, 3).toString(), 'e3');
  t.deepEqual(again.readLac(1), { lac: 2, last: 3, fenced: false });
});

test('bookie: a fenced ledger refuses every later add of its old writer; other ledgers go on; the fence is durable', async (t) => {
  const path = dir();
  const store = BookieStore.open(path);
  await store.add(5, 0, -1, Buffer.from('a'), 'old');
  await store.add(5, 1, 0, Buffer.from('b'), 'old');
  t.deepEqual(await store.fence(5), { lac: 0, last: 1 });
  const refused = await t.throwsAsync(store.add(5, 2, 1, Buffer.from('c'), 'old'));
  t.is((refused as BookieError).code, 'ADMQ_ERR_LEDGER_FENCED');
  await store.add(6, 0, -1, Buffer.from('x'), 'old');
  // Fencing a ledger this node never saw (recovery asks every bookie of the ensemble).
  await store.fence(9);
  t.is(((await t.throwsAsync(store.add(9, 0, -1, Buffer.from('late'), 'old'))) as BookieError).code, 'ADMQ_ERR_LEDGER_FENCED');
  await store.close();
  const again = BookieStore.open(path);
  t.teardown(() => again.close());
  t.is(((await t.throwsAsync(again.add(5, 2, 1, Buffer.from('c'), 'old'))) as BookieError).code, 'ADMQ_ERR_LEDGER_FENCED');
  t.is(again.read(5, 1).toString(), 'b');
});

test('bookie: only the ledger’s writer may add to it', async (t) => {
  const store = BookieStore.open(dir());
  t.teardown(() => store.close());
  await store.add(3, 0, -1, Buffer.from('mine'), 'writer-a');
  t.is(((await t.throwsAsync(store.add(3, 1, 0, Buffer.from('theirs'), 'writer-b'))) as BookieError).code, 'ADMQ_ERR_LEDGER_WRITER');
});

test('bookie: kill -9 while adding — every add that was acknowledged is stored after a restart', async (t) => {
  const path = dir();
  const fixture = fileURLToPath(new URL('./fixtures-bookie-writer.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const acked: number[] = [];
  let buffered = '';
  child.stdout?.on('data', (c: Buffer) => {
    buffered += c.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('acked ')) acked.push(Number(line.slice(6)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await waitFor(() => acked.length >= 2000, 60_000, '2,000 acknowledged adds');
  child.kill('SIGKILL');
  await exited;
  const store = BookieStore.open(path);
  t.teardown(() => store.close());
  const missing = acked.filter((id) => {
    try {
      return store.read(7, id).toString() !== `entry-${id}`;
    } catch {
      return true;
    }
  });
  t.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged adds lost`);
});
