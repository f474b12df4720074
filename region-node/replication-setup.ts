// Starts a node's part in a multi-region deployment: the replication listener with the
// topology's transport security, and the replicator over the node's log.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startReplicator, type ReplicatorHandle } from '../replicator/index.ts';
import { bindGrpcServer, channelCredentials, channelOptions, tlcpPeerIdentity, type ServerBinding, type TransportSecurity } from '../tls/index.ts';
import type { Placement, Topology } from '../topology/index.ts';
import type { Tracer } from '../observability/tracing.ts';
import type { Broker } from './broker/broker.ts';
import { ConfigError } from './errors.ts';
import { installHttp2ServerWindows } from './http2-window.ts';
import { createReplicationLog, type ClusterServing } from './replication-log.ts';

function readPem(dir: string, file: string): string {
  const path = join(dir, file);
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`transport.certDir: cannot read ${path} (make certificates with "admq certs"): ${(error as Error).message}`);
  }
}

/** Transport security of this region's links, from the topology's transport and cert directory. */
export function linkSecurity(topology: Topology, region: string, topologyDir: string, remote?: string): TransportSecurity {
  const transport = topology.transport;
  if (transport.kind === 'insecure') return { kind: 'insecure' };
  const dir = resolve(topologyDir, transport.certDir ?? '.');
  if (transport.kind === 'tls') {
    // Node's TLS 1.3 with standard certificates (admq certs create-tls).
    return {
      kind: 'tls',
      caPem: readPem(dir, 'tls-ca.crt'),
      certPem: readPem(dir, `${region}-tls.crt`),
      keyPem: readPem(dir, `${region}-tls.key`),
      ...(remote ? { servername: `${remote}.admq` } : {}),
    };
  }
  return {
    kind: 'tlcp',
    caPem: readPem(dir, 'ca.crt'),
    signCertPem: readPem(dir, `${region}-sign.crt`),
    signKeyPem: readPem(dir, `${region}-sign.key`),
    encCertPem: readPem(dir, `${region}-enc.crt`),
    encKeyPem: readPem(dir, `${region}-enc.key`),
    ...(remote ? { servername: `${remote}.admq` } : {}),
  };
}

export interface ReplicationRuntime {
  replicator: ReplicatorHandle;
  address: string;
  close(): Promise<void>;
}

export async function startReplication(options: {
  topology: Topology;
  topologyDir: string;
  region: string;
  /** host:port of this node's replication listener (its entry in the topology). */
  listenAddress: string;
  /** A broker of a regional cluster replicates the topics it serves. */
  cluster?: ClusterServing;
  broker: Broker;
  readPhysicalMs: () => number;
  log: (line: string) => void;
  placement?: () => Placement;
  observeDelay?: (topic: string, origin: string, ms: number) => void;
  tracer?: Tracer;
}): Promise<ReplicationRuntime> {
  const { topology, region, topologyDir } = options;
  if (!topology.regions.has(region)) throw new ConfigError(`region "${region}" is not in the topology`);
  const serverSecurity = linkSecurity(topology, region, topologyDir);
  const credentials = new Map<string, grpc.ChannelCredentials>();
  const replicator = startReplicator(
    { topology, region, subscriptionSyncIntervalMs: topology.subscriptionSyncIntervalMs, ...(options.placement && { placement: options.placement }) },
    {
      log: createReplicationLog(options.broker, options.cluster),
      channelCredentials: (remote) => {
        let c = credentials.get(remote);
        if (!c) credentials.set(remote, (c = channelCredentials(linkSecurity(topology, region, topologyDir, remote))));
        return c;
      },
      channelOptions: (remote) => channelOptions(linkSecurity(topology, region, topologyDir, remote)),
      peerRegion: (call) => {
        if (serverSecurity.kind === 'tlcp') return tlcpPeerIdentity(call)?.organizationalUnit ?? '';
        if (serverSecurity.kind === 'tls') {
          const subject = call.getAuthContext().sslPeerCertificate?.subject as Record<string, string | string[]> | undefined;
          const ou = subject?.OU;
          return (Array.isArray(ou) ? ou[0] : ou) ?? '';
        }
        return undefined;
      },
      nowMs: options.readPhysicalMs,
      logLine: options.log,
      ...(options.observeDelay && { observeDelay: options.observeDelay }),
      ...(options.tracer && { tracer: options.tracer }),
    },
  );
  installHttp2ServerWindows();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  server.addService(replicator.service.definition, replicator.service.implementation);
  const [host, port] = options.listenAddress.split(':') as [string, string];
  let binding: ServerBinding;
  try {
    binding = await bindGrpcServer(server, serverSecurity, { host, port: Number(port) });
  } catch (error) {
    // The links have started: stop them before the caller closes the log they read.
    await replicator.close();
    server.forceShutdown();
    throw error;
  }
  let closed: Promise<void> | undefined;
  return {
    replicator,
    address: `${host}:${binding.port}`,
    close: () =>
      (closed ??= (async () => {
        await replicator.close();
        server.forceShutdown();
        await binding.close().catch(() => {});
      })()),
  };
}
