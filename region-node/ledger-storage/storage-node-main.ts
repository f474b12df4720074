// A storage node as its own process:
//   tsx region-node/ledger-storage/storage-node-main.ts --data-dir D --port P --node-id ID
//       [--host H] [--etcd host:port[,host:port]] [--lease-ttl-ms N] [--no-sync]
// Prints `storage-node <id> listening on <address>` once it serves (and, with --etcd, is
// registered); SIGTERM or SIGINT closes it cleanly (it leaves the registry at once) and
// exits 0. Bad arguments exit 2 with a message naming the flag.
import { parseArgs } from 'node:util';
import { EtcdMetadataStore } from '../metadata-store/etcd-store.ts';
import type { MetadataStore } from '../metadata-store/store.ts';
import { StorageNodeServer } from './storage-node-server.ts';

const USAGE = 'usage: storage-node-main.ts --data-dir D --port P --node-id ID [--host H] [--etcd host:port[,host:port]] [--lease-ttl-ms N] [--no-sync]';

function usage(message: string): never {
  console.error(`storage-node: ${message}\n${USAGE}`);
  process.exit(2);
}

function integerFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) usage(`--${name} must be a non-negative integer; got ${JSON.stringify(value)}`);
  return Number(value);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        'data-dir': { type: 'string' },
        port: { type: 'string' },
        'node-id': { type: 'string' },
        host: { type: 'string' },
        etcd: { type: 'string' },
        'lease-ttl-ms': { type: 'string' },
        'no-sync': { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    usage((error as Error).message);
  }
  const dataDir = values['data-dir'] ?? usage('--data-dir is required');
  const nodeId = values['node-id'] ?? usage('--node-id is required');
  const port = integerFlag('port', values.port) ?? usage('--port is required (0: any free port)');
  const leaseTtlMs = integerFlag('lease-ttl-ms', values['lease-ttl-ms']);
  const endpoints = values.etcd?.split(',').filter((e) => e !== '');
  if (endpoints !== undefined && endpoints.length === 0) usage('--etcd needs at least one host:port');
  const metadata: MetadataStore | undefined = endpoints && new EtcdMetadataStore(endpoints);

  let server: StorageNodeServer;
  try {
    server = await StorageNodeServer.start({
      dataDir,
      nodeId,
      port,
      ...(values.host !== undefined && { host: values.host }),
      ...(metadata && { metadata }),
      ...(leaseTtlMs !== undefined && { leaseTtlMs }),
      sync: !values['no-sync'],
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    console.error(`storage-node ${nodeId}: failed to start${code ? ` (${code})` : ''}: ${(error as Error).message}`);
    await metadata?.close();
    process.exit(1);
  }
  process.stdout.write(`storage-node ${nodeId} listening on ${server.address}\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`[storage-node ${nodeId}] ${signal}: shutting down`);
    void (async () => {
      await server.close();
      await metadata?.close();
      process.exit(0);
    })().catch((error: unknown) => {
      console.error(`storage-node ${nodeId}: shutdown failed: ${(error as Error).message}`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
