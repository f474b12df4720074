import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCertsCommand, runTlsCommand } from './cli-commands.ts';
import { parseCertificatesPem, certificateRole } from './certificates.ts';
import { removeTempDir, tempDir } from '../test-support/temp-dir.ts';

test('cli: certs create-ca, create, inspect and verify work end to end', async (t) => {
  const directory = tempDir('admq-cli-');
  t.teardown(() => removeTempDir(directory));
  t.is(await runCertsCommand(['create-ca', '--out', directory, '--cn', 'cli root']), 0);
  t.is(await runCertsCommand(['create', '--ca-dir', directory, '--region', 'cn-north', '--node', 'n3', '--dns', 'localhost']), 0);
  const enc = parseCertificatesPem(await readFile(join(directory, 'cn-north-n3-enc.crt')))[0]!;
  t.is(certificateRole(enc), 'enc');
  t.is(await runCertsCommand(['inspect', join(directory, 'cn-north-n3-sign.crt')]), 0);
  t.is(await runCertsCommand(['verify', '--ca', join(directory, 'ca.crt'), '--role', 'sign', '--name', 'n3.cn-north.admq', join(directory, 'cn-north-n3-sign.crt')]), 0);
  t.is(await runCertsCommand(['verify', '--ca', join(directory, 'ca.crt'), '--role', 'enc', join(directory, 'cn-north-n3-sign.crt')]), 1);
});

test('cli: every subcommand prints --help and bad usage exits 2', async (t) => {
  for (const command of ['create-ca', 'create', 'inspect', 'verify']) t.is(await runCertsCommand([command, '--help']), 0);
  for (const command of ['server', 'client']) t.is(await runTlsCommand([command, '--help']), 0);
  t.is(await runCertsCommand(['bogus']), 2);
  t.is(await runTlsCommand(['client']), 2);
  t.is(await runCertsCommand([]), 2);
});
