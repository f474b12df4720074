// The admq command, run as a real child process against a real node.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { start, type RegionNodeHandle } from '../region-node/index.ts';
import { ADMQ_CLI } from '../test-support/processes.ts';
import { tempDir } from '../test-support/temp-dir.ts';

const run = promisify(execFile);
let node: RegionNodeHandle;

async function admq(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, ADMQ_ADMIN_URL: node.adminUrl, ADMQ_SERVICE_URL: node.grpcAddress };
  try {
    if (input !== undefined) {
      return await new Promise((resolve) => {
        const child = execFile(process.execPath, [ADMQ_CLI, ...args], { env }, (error, stdout, stderr) =>
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin?.end(input);
      });
    }
    const { stdout, stderr } = await run(process.execPath, [ADMQ_CLI, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: Number(e.code ?? 1), stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test.before(async () => {
  node = await start({ dataDir: tempDir('admq-cli-'), grpcPort: 0, adminPort: 0 }, { log: () => {} });
});
test.after.always(() => node.close());

test('cli: admq --help and every subcommand --help print complete usage', async (t) => {
  const main = await admq(['--help']);
  t.is(main.code, 0);
  for (const command of ['start', 'replication', 'tenants', 'namespaces', 'topics', 'produce', 'consume', 'perf', 'certs', 'tls', 'failover', 'drill']) {
    t.true(main.stdout.includes(command), `main help lists ${command}`);
    const sub = await admq([command, '--help']);
    t.is(sub.code, 0, `${command} --help exits 0`);
    t.regex(sub.stdout, /Usage|usage/, `${command} --help prints usage`);
  }
});

test('cli: unknown command and bad flags are usage errors (exit 2)', async (t) => {
  t.is((await admq(['frobnicate'])).code, 2);
  const bad = await admq(['topics', 'create', 'x/y/z', '--partitions', 'many']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--partitions must be an integer/);
});

test('cli: tenant → namespace → topic, produce from args, stdin and file, consume, stats, delete', async (t) => {
  t.is((await admq(['tenants', 'create', 'acme'])).code, 0);
  t.is((await admq(['namespaces', 'create', 'acme/orders'])).code, 0);
  t.is((await admq(['topics', 'create', 'acme/orders/pay'])).code, 0);
  t.is((await admq(['topics', 'create', 'acme/orders/parts', '--partitions', '3'])).code, 0);
  const listed = await admq(['topics', 'list', 'acme/orders']);
  t.regex(listed.stdout, /persistent:\/\/acme\/orders\/parts \(3 partitions\)/);
  const produced = await admq(['produce', 'acme/orders/pay', '-m', 'one', '-m', 'two', '-k', 'k1', '-p', 'src=cli']);
  t.is(produced.code, 0, produced.stderr);
  t.regex(produced.stdout, /offset=0 seq=0[\s\S]*offset=1 seq=1/);
  t.is((await admq(['produce', 'acme/orders/pay', '--lines'], 'three\nfour\n')).code, 0);
  const file = join(tempDir('admq-cli-file-'), 'msg.txt');
  writeFileSync(file, 'five');
  t.is((await admq(['produce', 'acme/orders/pay', '--file', file])).code, 0);
  const consumed = await admq(['consume', 'acme/orders/pay', '-s', 'audit', '--initial-position', 'earliest', '-n', '5']);
  t.is(consumed.code, 0, consumed.stderr);
  const lines = consumed.stdout.trim().split('\n');
  t.deepEqual(lines.map((l) => l.split(' ').pop()), ['one', 'two', 'three', 'four', 'five']);
  t.regex(lines[0] ?? '', /offset=0 key=k1 \{"src":"cli"\} one/);
  const stats = JSON.parse((await admq(['topics', 'stats', 'acme/orders/pay'])).stdout) as { entries: number; subscriptions: Record<string, { backlog: number }> };
  t.is(stats.entries, 5);
  t.is(stats.subscriptions.audit?.backlog, 0);
  const refused = await admq(['namespaces', 'delete', 'acme/orders']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /ADMQ_ERR_NOT_EMPTY/);
  t.is((await admq(['topics', 'delete', 'acme/orders/pay'])).code, 0);
  t.is((await admq(['topics', 'delete', 'acme/orders/parts'])).code, 0);
  t.is((await admq(['namespaces', 'delete', 'acme/orders'])).code, 0);
});

test('cli: a bad topic name is reported with the part that is wrong', async (t) => {
  const result = await admq(['topics', 'create', 'public/de fault/x']);
  t.is(result.code, 1);
  t.regex(result.stderr, /ADMQ_ERR_TOPIC_NAME: namespace name "de fault"/);
});

test('cli: perf produce and perf consume report progress and an HDR summary', async (t) => {
  t.is((await admq(['topics', 'create', 'public/default/perf'])).code, 0);
  const produced = await admq(['perf', 'produce', 'public/default/perf', '--count', '2000', '--duration-s', '30']);
  t.is(produced.code, 0, produced.stderr);
  const p = JSON.parse(produced.stdout) as { acked: number; sendLatency: { p99Ms: number; count: number } };
  t.is(p.acked, 2000);
  t.is(p.sendLatency.count, 2000);
  const consumed = await admq(['perf', 'consume', 'public/default/perf', '--count', '2000', '--duration-s', '30']);
  t.is(consumed.code, 0, consumed.stderr);
  t.is((JSON.parse(consumed.stdout) as { received: number }).received, 2000);
});
