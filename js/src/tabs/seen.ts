// Which durable events a tab has delivered, per session, so that each seq reaches its listeners
// once whichever leader relayed it. One leader's relays arrive in order, but a new leader's replay
// may overtake an old leader's last relays: seqs above the contiguous point are remembered
// (bounded) until the gap fills.
import type { Point } from './wire.js';

/** Sessions remembered (the current one and a few before it). */
const SESSIONS = 4;
/** Seqs remembered above a session's contiguous point. */
const AHEAD = 256;

interface Session {
  /** Every seq up to this one was delivered. */
  upTo: number;
  above: Set<number>;
}

export class Seen {
  readonly #sessions = new Map<string, Session>();
  /** The session the latest event or leader named. */
  current: string | null = null;

  /** Whether `seq` of `session` is new (and now counts as delivered). */
  fresh(session: string, seq: number): boolean {
    this.current = session;
    let s = this.#sessions.get(session);
    if (!s) {
      s = { upTo: seq - 1, above: new Set() };
      this.#sessions.set(session, s);
      if (this.#sessions.size > SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!);
    }
    if (seq <= s.upTo || s.above.has(seq)) return false;
    s.above.add(seq);
    if (s.above.size > AHEAD) s.upTo = Math.min(...s.above) - 1; // a gap that is not filling
    this.#advance(s);
    return true;
  }

  /** Every seq of `point.session` up to `point.seq` arrived (a leader resigned there). */
  reached(point: Point): void {
    this.current = point.session;
    const s = this.#sessions.get(point.session);
    if (!s) return void this.#sessions.set(point.session, { upTo: point.seq, above: new Set() });
    s.upTo = Math.max(s.upTo, point.seq);
    this.#advance(s);
  }

  /** The current session and its contiguous seq: where a new leader may resume. */
  point(): Point | null {
    const session = this.current;
    return session ? { session, seq: Math.max(0, this.#sessions.get(session)?.upTo ?? 0) } : null;
  }

  #advance(s: Session): void {
    for (const seq of s.above) if (seq <= s.upTo) s.above.delete(seq);
    while (s.above.delete(s.upTo + 1)) s.upTo += 1;
  }
}
