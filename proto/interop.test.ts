// The .proto is the contract for every language: a Python client generated from it with
// Debian's grpcio tools produces and consumes, and the TypeScript client reads what it wrote.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { receiveMany, startFixture } from '../test-support/node-fixture.ts';
import { tempDir } from '../test-support/temp-dir.ts';
import { PROTO_PATH } from './index.ts';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./interop/python_client.py', import.meta.url));

test('interop: a Python client generated from admq.proto produces and consumes', async (t) => {
  t.true(existsSync(PYTHON), `${PYTHON} is needed (Debian python3 with python3-grpcio and python3-grpc-tools; .ci/run installs them)`);
  const out = tempDir('admq-pygen-');
  await run(PYTHON, ['-m', 'grpc_tools.protoc', `-I${join(PROTO_PATH, '..')}`, `--python_out=${out}`, `--grpc_python_out=${out}`, PROTO_PATH]);
  const f = await startFixture();
  t.teardown(() => f.close());
  const topic = await f.topic('python');
  const { stdout } = await run(PYTHON, [SCRIPT, out, f.node.grpcAddress, topic], { timeout: 60_000 });
  const result = JSON.parse(stdout) as {
    partitions: number;
    opened: { producer: string; last_sequence_id: number };
    receipt: { request_id: number; offsets: number[] };
    consumed: Array<{ offset: number; payload: string; key: string; properties: Record<string, string>; origin_region: string; hlc: string; producer: string }>;
  };
  t.is(result.partitions, 0);
  t.deepEqual(result.opened, { producer: 'python-1', last_sequence_id: -1 });
  t.deepEqual(result.receipt, { request_id: 7, offsets: [0, 1, 2] });
  t.deepEqual(result.consumed.map((m) => [m.offset, m.payload, m.key, m.properties.lang, m.origin_region, m.producer]), [
    [0, 'py0', 'k0', 'python', 'standalone', 'python-1'],
    [1, 'py1', 'k1', 'python', 'standalone', 'python-1'],
    [2, 'py2', 'k2', 'python', 'standalone', 'python-1'],
  ]);
  // The TypeScript client reads the same entries, with the same 64-bit HLC values.
  const consumer = await f.client.subscribe({ topic, subscription: 'ts', initialPosition: 'earliest' });
  const messages = await receiveMany(consumer, 3);
  t.deepEqual(messages.map((m) => m.payload.toString()), ['py0', 'py1', 'py2']);
  t.deepEqual(messages.map((m) => m.hlc.toString()), result.consumed.map((m) => m.hlc));
  await consumer.close();
});
