// Reconnect delays: exponential from initialMs to maxMs, with jitter so that many
// clients of a restarted node do not reconnect in lockstep.
export class Backoff {
  #attempt = 0;
  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(base / 2 + (base / 2) * this.random());
  }

  reset(): void {
    this.#attempt = 0;
  }
}
