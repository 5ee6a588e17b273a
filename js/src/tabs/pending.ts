// A tab's sends and requests not settled yet, under the tab's own ids: kept until their outcome
// arrives (whichever leader sends it), offered again to every new leader, bounded like the outbox.
import { sockError, type Claim } from './wire.js';

export interface Pending {
  claim: Claim;
  /** A request: its promise and the timer that rejects it with `timeout`. */
  req?: { resolve(v: unknown): void; reject(e: unknown): void; timer: ReturnType<typeof setTimeout>; deadline: number };
}

const bytesOf = (c: Claim) => c.json.length + c.name.length;

export class Pendings {
  readonly #byLocal = new Map<number, Pending>();
  #bytes = 0;
  readonly #maxMessages: number;
  readonly #maxBytes: number;

  constructor(maxMessages: number, maxBytes: number) {
    this.#maxMessages = maxMessages;
    this.#maxBytes = maxBytes;
  }

  /** Keeps `p`; throws `outbox_full` at the outbox's bounds. */
  add(p: Pending): void {
    const bytes = bytesOf(p.claim);
    if (this.#byLocal.size >= this.#maxMessages || this.#bytes + bytes > this.#maxBytes) {
      throw sockError('outbox_full', `outbox full (${this.#maxMessages} messages / ${this.#maxBytes} bytes); send not queued`);
    }
    this.#byLocal.set(p.claim.local, p);
    this.#bytes += bytes;
  }

  get(local: number): Pending | undefined {
    return this.#byLocal.get(local);
  }

  /** Removes and returns pending `local` (undefined: settled already). */
  take(local: number): Pending | undefined {
    const p = this.#byLocal.get(local);
    if (!p) return undefined;
    this.#byLocal.delete(local);
    this.#bytes -= bytesOf(p.claim);
    return p;
  }

  /** Everything pending, as offered to a new leader (a request with the time it has left). */
  claims(now: number): Claim[] {
    return [...this.#byLocal.values()].map((p) => (p.req ? { ...p.claim, timeoutMs: Math.max(0, p.req.deadline - now) } : p.claim));
  }

  get requests(): number {
    let n = 0;
    for (const p of this.#byLocal.values()) if (p.req) n += 1;
    return n;
  }

  /** Removes everything; the requests, to be rejected. */
  clear(): Pending[] {
    const all = [...this.#byLocal.values()];
    this.#byLocal.clear();
    this.#bytes = 0;
    return all;
  }
}
