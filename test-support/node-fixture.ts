// An in-process region node on port 0 with a fresh data directory, and small helpers.
import { AdminClient, AdmqClient, type AdmqConsumer, type Message } from '../client/index.ts';
import { start, type RegionNodeConfig, type RegionNodeHandle } from '../region-node/index.ts';
import { tempDir } from './temp-dir.ts';

export interface Fixture {
  node: RegionNodeHandle;
  admin: AdminClient;
  client: AdmqClient;
  topic(name?: string, partitions?: number): Promise<string>;
  close(): Promise<void>;
}

let counter = 0;

export async function startFixture(config: Partial<RegionNodeConfig> = {}): Promise<Fixture> {
  const node = await start({ dataDir: tempDir('admq-fixture-'), grpcPort: 0, adminPort: 0, ...config }, { log: () => {} });
  const admin = new AdminClient(node.adminUrl);
  const client = new AdmqClient({ serviceUrl: node.grpcAddress, backoffInitialMs: 50, backoffMaxMs: 1000 });
  return {
    node,
    admin,
    client,
    async topic(name = `t${++counter}`, partitions = 0) {
      const full = `persistent://public/default/${name}`;
      await admin.createTopic(full, partitions);
      return full;
    },
    async close() {
      await client.close();
      await node.close();
    },
  };
}

/** Receives until `count` messages arrived or `timeoutMs` passed without one. */
export async function receiveMany(consumer: AdmqConsumer, count: number, timeoutMs = 5000): Promise<Message[]> {
  const out: Message[] = [];
  while (out.length < count) out.push(await consumer.receive(timeoutMs));
  return out;
}

/** Asserts that nothing arrives within `ms` (used to check that flow control holds). */
export async function nothingWithin(consumer: AdmqConsumer, ms: number): Promise<boolean> {
  try {
    await consumer.receive(ms);
    return false;
  } catch {
    return true;
  }
}
