// `admq dev`: a local deployment of three regions on this machine — certificates, a
// topology with TLCP links, and one region-node process per city — so that a new user
// sees active-active replication within a minute of cloning.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { createCa, issueDoubleCertificate, writeIssued, loadIssued, writeStandardRegionCertificate } from '../tls/index.ts';

export const DEV_REGIONS = ['shanghai', 'beijing', 'shenzhen'];
const CLI = fileURLToPath(new URL('./admq.mjs', import.meta.url));

export interface DevLayout {
  dir: string;
  topologyPath: string;
  regions: Array<{ name: string; grpc: string; admin: string; replication: string }>;
}

/** Writes certificates (if missing) and the topology of a local multi-region deployment. */
export async function prepareDev(options: { dir: string; regions: string[]; basePort: number; transport: 'tlcp' | 'tls' | 'insecure' }): Promise<DevLayout> {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const certDir = join(dir, 'certs');
  if (options.transport === 'tlcp') {
    let ca;
    if (existsSync(join(certDir, 'ca.crt'))) ca = await loadIssued(join(certDir, 'ca.crt'), join(certDir, 'ca.key'));
    else {
      ca = createCa({ commonName: 'admq dev root CA' });
      await writeIssued(certDir, 'ca', ca);
    }
    for (const region of options.regions) {
      if (existsSync(join(certDir, `${region}-enc.crt`))) continue;
      const pair = issueDoubleCertificate(ca, { region });
      await writeIssued(certDir, `${region}-sign`, pair.sign);
      await writeIssued(certDir, `${region}-enc`, pair.enc);
    }
  }
  if (options.transport === 'tls') {
    for (const region of options.regions) {
      if (!existsSync(join(certDir, `${region}-tls.crt`))) await writeStandardRegionCertificate(certDir, region);
    }
  }
  const regions = options.regions.map((name, i) => ({
    name,
    grpc: `127.0.0.1:${options.basePort + i}`,
    admin: `127.0.0.1:${options.basePort + 1000 + i}`,
    replication: `127.0.0.1:${options.basePort + 100 + i}`,
  }));
  const topology = {
    regions: Object.fromEntries(regions.map((r) => [r.name, { grpc: r.grpc, admin: r.admin, replication: r.replication, dataDir: r.name }])),
    transport: options.transport === 'insecure' ? { kind: 'insecure' } : { kind: options.transport, certDir: 'certs' },
    tenants: { public: { allowedRegions: options.regions, homeRegion: options.regions[0] } },
    namespaces: { 'public/default': { replicationSet: options.regions } },
  };
  const topologyPath = join(dir, 'topology.yaml');
  writeFileSync(topologyPath, `# Written by "admq dev": a local ${options.regions.length}-region deployment.\n${stringify(topology)}`);
  return { dir, topologyPath, regions };
}

/** Starts one `admq start --topology … --region …` process per region, output prefixed. */
export function spawnRegions(layout: DevLayout, onLine: (region: string, line: string) => void): Map<string, ChildProcess> {
  const children = new Map<string, ChildProcess>();
  for (const region of layout.regions) {
    const child = spawn(process.execPath, [CLI, 'start', '--topology', layout.topologyPath, '--region', region.name], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      let buffered = '';
      stream?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          onLine(region.name, buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
        }
      });
    }
    children.set(region.name, child);
  }
  return children;
}
