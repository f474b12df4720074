// The process of a ProxyProcess (proxy-process.ts): argv target host, port and a name;
// prints "listening host:port", then obeys "blackhole" and "heal" lines on stdin.
import { createInterface } from 'node:readline';
import { FaultProxy } from '../multi-region-tests/fault-proxy.ts';

const [host, port, name] = process.argv.slice(2) as [string, string, string];
const proxy = await FaultProxy.start({ targetHost: host, targetPort: Number(port), name });
process.stdout.write(`listening ${proxy.address}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'blackhole') proxy.blackhole('both');
  else if (line === 'heal') proxy.heal();
  else continue;
  process.stdout.write(`done ${line}\n`);
}
