// A FaultProxy in its own process, driven by lines on its stdin ("blackhole", "heal").
// Tests whose proxies must outlive the peers they cut off use it: whatever state a
// blackholed connection is left in when its peers die, it dies with this process (SIGKILL
// at the end), not in the test's own process.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export class ProxyProcess {
  private constructor(
    readonly child: ChildProcess,
    /** host:port to dial instead of the target. */
    readonly address: string,
  ) {}

  static async start(targetHost: string, targetPort: number, name: string): Promise<ProxyProcess> {
    const main = fileURLToPath(new URL('./proxy-process-main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', main, targetHost, String(targetPort), name], { stdio: ['pipe', 'pipe', 'inherit'] });
    const address = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`proxy ${name} did not start`)), 20_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /^listening (\S+)$/m.exec(out);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`proxy ${name} exited with ${code}`));
      });
    });
    return new ProxyProcess(child, address);
  }

  /** Stops all traffic both ways (a partition: nothing is closed). Resolves once in force. */
  blackhole(): Promise<void> {
    return this.#command('blackhole');
  }

  heal(): Promise<void> {
    return this.#command('heal');
  }

  #command(line: string): Promise<void> {
    return new Promise((resolve) => {
      const onData = (chunk: Buffer): void => {
        if (chunk.toString().includes(`done ${line}`)) {
          this.child.stdout?.off('data', onData);
          resolve();
        }
      };
      this.child.stdout?.on('data', onData);
      this.child.stdin?.write(`${line}\n`);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}
