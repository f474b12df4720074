// Pending receive() calls of a consumer: served in order as messages arrive, each given up
// with ADMQ_ERR_TIMEOUT after its own timeout. Shared by Consumer and PartitionedConsumer.
import { ErrorCode } from '../proto/index.ts';
import type { Message } from './consumer.ts';
import { AdmqClientError } from './errors.ts';

interface Waiter {
  resolve: (m: Message) => void;
  reject: (e: AdmqClientError) => void;
  timer?: NodeJS.Timeout;
}

export class Waiters {
  readonly #waiting: Waiter[] = [];

  get length(): number {
    return this.#waiting.length;
  }

  /** A promise for the next message handed to resolveNext(). */
  wait(timeoutMs: number | undefined): Promise<Message> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          const at = this.#waiting.indexOf(waiter);
          if (at >= 0) this.#waiting.splice(at, 1);
          reject(new AdmqClientError(ErrorCode.Timeout, `no message within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#waiting.push(waiter);
    });
  }

  /** Gives the message to the oldest waiter; false when nobody waits. */
  resolveNext(message: Message): boolean {
    const waiter = this.#waiting.shift();
    if (!waiter) return false;
    if (waiter.timer) clearTimeout(waiter.timer);
    waiter.resolve(message);
    return true;
  }

  /** Fails the oldest waiter; false when nobody waits. */
  rejectNext(error: AdmqClientError): boolean {
    const waiter = this.#waiting.shift();
    if (!waiter) return false;
    if (waiter.timer) clearTimeout(waiter.timer);
    waiter.reject(error);
    return true;
  }

  rejectAll(error: AdmqClientError): void {
    while (this.rejectNext(error));
  }
}
