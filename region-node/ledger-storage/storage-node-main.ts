// A storage node as its own process (`admq storage-node`, or this file run directly):
//   admq storage-node --data-dir D --port P --node-id ID
//       [--host H] [--metadata-store etcd://host:port[,host:port]] [--lease-ttl-ms N] [--no-sync]
// (--etcd host:port[,host:port] is the same as --metadata-store without the scheme.)
// Prints `storage-node <id> listening on <address>` once it serves (and, with --etcd, is
// registered); SIGTERM or SIGINT closes it cleanly (it leaves the registry at once) and
// exits 0. Bad arguments exit 2 with a message naming the flag.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EtcdMetadataStore } from '../metadata-store/etcd-store.ts';
import type { MetadataStore } from '../metadata-store/store.ts';
import { StorageNodeServer } from './storage-node-server.ts';

export const STORAGE_NODE_HELP = `Usage: admq storage-node --data-dir DIR --port PORT --node-id ID [options]

Runs a storage node of a regional cluster (DESIGN §4): it keeps ledger entries in LMDB,
fsyncs every add before answering, and registers itself in the region's etcd on a lease,
so brokers find it (and stop using it soon after it dies). SIGINT or SIGTERM shuts it
down cleanly: it leaves the registry at once.

Options:
  --data-dir DIR           LMDB directory of the node's ledgers (created if missing)
  --port PORT              gRPC port, 0 = any free
  --node-id ID             the node's id in the region (unique; a restarted node keeps its id)
  --host HOST              listen host (default 127.0.0.1)
  --metadata-store URL     etcd://host:port[,host:port…] to register in (without it, unregistered)
  --advertised-address A   host:port brokers dial, if not the listen address (a proxy, NAT)
  --lease-ttl-ms N         registry lease TTL: a dead node leaves the registry after about this (default 3000)
  --no-sync                skip fsync — tests and benchmarks only: an acked add may be lost in a crash`;

class UsageFailure extends Error {}

function usage(message: string): never {
  throw new UsageFailure(message);
}

function integerFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) usage(`--${name} must be a non-negative integer; got ${JSON.stringify(value)}`);
  return Number(value);
}

/** Runs until SIGINT or SIGTERM; resolves with the exit code (2: bad arguments, 1: failed to start). */
export async function runStorageNode(argv: string[]): Promise<number> {
  try {
    return await serve(argv);
  } catch (error) {
    if (!(error instanceof UsageFailure)) throw error;
    console.error(`storage-node: ${error.message}\n\n${STORAGE_NODE_HELP}`);
    return 2;
  }
}

async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(STORAGE_NODE_HELP);
    return 0;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        port: { type: 'string' },
        'node-id': { type: 'string' },
        host: { type: 'string' },
        etcd: { type: 'string' },
        'metadata-store': { type: 'string' },
        'advertised-address': { type: 'string' },
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
  const storeUrl = values['metadata-store'];
  if (storeUrl !== undefined && !storeUrl.startsWith('etcd://')) usage(`--metadata-store must be etcd://host:port[,host:port…]; got ${JSON.stringify(storeUrl)}`);
  const endpoints = (values.etcd ?? storeUrl?.slice('etcd://'.length))?.split(',').filter((e) => e !== '');
  if (endpoints !== undefined && endpoints.length === 0) usage('--etcd needs at least one host:port');
  const metadata: MetadataStore | undefined = endpoints && new EtcdMetadataStore(endpoints);

  let server: StorageNodeServer;
  try {
    server = await StorageNodeServer.start({
      dataDir,
      nodeId,
      port,
      ...(values.host !== undefined && { host: values.host }),
      ...(values['advertised-address'] !== undefined && { advertisedAddress: values['advertised-address'] }),
      ...(metadata && { metadata }),
      ...(leaseTtlMs !== undefined && { leaseTtlMs }),
      sync: !values['no-sync'],
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    console.error(`storage-node ${nodeId}: failed to start${code ? ` (${code})` : ''}: ${(error as Error).message}`);
    await metadata?.close();
    return 1;
  }
  process.stdout.write(`storage-node ${nodeId} listening on ${server.address}\n`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      console.log(`[storage-node ${nodeId}] ${signal}: shutting down`);
      void (async () => {
        await server.close();
        await metadata?.close();
        resolve(0);
      })().catch((error: unknown) => {
        console.error(`storage-node ${nodeId}: shutdown failed: ${(error as Error).message}`);
        resolve(1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(await runStorageNode(process.argv.slice(2)));
