// Fault proxies in a process of their own (network-process-main.ts), for benchmarks: a
// proxy in the benchmark's own process delays its chunks by whatever that process's event
// loop lags behind while it runs the load generators, on top of the injected delay, and
// that jitter would count as replication delay. Commands are sent at once and applied in
// order; `settled()` waits until the process has applied every one sent so far.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FaultDirection } from './fault-proxy.ts';

/** What the harness asks of a link's proxy, wherever it runs. */
export interface LinkProxy {
  readonly address: string;
  setDelay(oneWayMs: number): void;
  setBandwidth(bytesPerSecond: number | undefined): void;
  setLoss(probability: number): void;
  blackhole(direction: 'both' | FaultDirection): void;
  heal(): void;
  retarget(port: number): void;
  close(): Promise<void>;
}

export class NetworkProcess {
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  #failure: Error | undefined;
  #last: Promise<void> = Promise.resolve();

  private constructor(readonly child: ChildProcess) {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      const answer = JSON.parse(line) as { id: number; ok: boolean; result?: unknown; error?: string };
      const waiter = this.#pending.get(answer.id);
      this.#pending.delete(answer.id);
      if (answer.ok) waiter?.resolve(answer.result);
      else waiter?.reject(new Error(answer.error));
    });
    child.once('exit', (code, signal) => {
      this.#failure = new Error(`the network process exited (${code ?? signal})`);
      for (const waiter of this.#pending.values()) waiter.reject(this.#failure);
      this.#pending.clear();
    });
  }

  static start(): NetworkProcess {
    const main = fileURLToPath(new URL('./network-process-main.ts', import.meta.url));
    return new NetworkProcess(spawn(process.execPath, ['--import', 'tsx', main], { stdio: ['pipe', 'pipe', 'inherit'] }));
  }

  #send(command: Record<string, unknown>): Promise<unknown> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const answered = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    this.#last = answered.then(
      () => undefined,
      () => undefined,
    );
    this.child.stdin?.write(`${JSON.stringify({ ...command, id })}\n`);
    return answered;
  }

  /** Fire and forget, for the synchronous LinkProxy methods; a failure is reported on stderr. */
  #post(command: Record<string, unknown>): void {
    this.#send(command).catch((error: unknown) => console.error(`network process: ${(error as Error).message}`));
  }

  /** Resolves once every command sent so far has been applied (answers come in order). */
  async settled(): Promise<void> {
    await this.#last;
  }

  async proxy(name: string, targetPort: number): Promise<LinkProxy> {
    const address = (await this.#send({ op: 'start', name, targetPort })) as string;
    return {
      address,
      setDelay: (oneWayMs) => this.#post({ op: 'setDelay', name, value: oneWayMs }),
      setBandwidth: (bytesPerSecond) => this.#post({ op: 'setBandwidth', name, value: bytesPerSecond ?? null }),
      setLoss: (probability) => this.#post({ op: 'setLoss', name, value: probability }),
      blackhole: (direction) => this.#post({ op: 'blackhole', name, direction }),
      heal: () => this.#post({ op: 'heal', name }),
      retarget: (port) => this.#post({ op: 'retarget', name, targetPort: port }),
      close: async () => {
        await this.#send({ op: 'close', name });
      },
    };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
