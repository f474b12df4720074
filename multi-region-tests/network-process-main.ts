// The process of a NetworkProcess (network-process.ts): hosts the fault proxies of a
// multi-region run, so that the simulated network keeps its timing whatever the process
// that drives the test (load generators, checkers) is doing. Commands arrive as JSON lines
// on stdin and are answered, in order, as JSON lines on stdout.
import { createInterface } from 'node:readline';
import { FaultProxy } from './fault-proxy.ts';

interface Command {
  id: number;
  op: 'start' | 'setDelay' | 'setBandwidth' | 'setLoss' | 'blackhole' | 'heal' | 'retarget' | 'close';
  name: string;
  targetPort?: number;
  value?: number | null;
  direction?: 'both' | 'forward' | 'backward';
}

const proxies = new Map<string, FaultProxy>();

function proxy(name: string): FaultProxy {
  const found = proxies.get(name);
  if (!found) throw new Error(`no proxy ${name}`);
  return found;
}

async function run(command: Command): Promise<unknown> {
  switch (command.op) {
    case 'start': {
      const started = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: command.targetPort ?? 0, name: command.name });
      proxies.set(command.name, started);
      return started.address;
    }
    case 'setDelay':
      return proxy(command.name).setDelay(command.value ?? 0);
    case 'setBandwidth':
      return proxy(command.name).setBandwidth(command.value ?? undefined);
    case 'setLoss':
      return proxy(command.name).setLoss(command.value ?? 0);
    case 'blackhole':
      return proxy(command.name).blackhole(command.direction ?? 'both');
    case 'heal':
      return proxy(command.name).heal();
    case 'retarget':
      return proxy(command.name).retarget(command.targetPort ?? 0);
    case 'close':
      await proxy(command.name).close();
      proxies.delete(command.name);
      return undefined;
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') continue;
  const command = JSON.parse(line) as Command;
  try {
    const result = await run(command);
    process.stdout.write(`${JSON.stringify({ id: command.id, ok: true, result })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ id: command.id, ok: false, error: (error as Error).message })}\n`);
  }
}
for (const p of proxies.values()) await p.close();
