// What the tabs of one group say to each other over their BroadcastChannel, and the errors they
// pass along (an `Error` does not survive structured cloning with its `code`, so it travels as
// `{ code, message }` and is rebuilt on arrival).
import type { ClientStats, StateChange } from '../sockline.js';

/** An error as it crosses the channel. */
export interface WireError {
  code: string;
  message: string;
}

import { sockError } from '../core/util.js';

export { sockError };

const FRAME_LIMIT = 65_536;
/** Room for the frame envelope around a send's event and data (as the core counts it). */
const SEND_ENVELOPE_BYTES = 64;
const utf8 = (s: string) => new TextEncoder().encode(s).length;

/**
 * Checks a send as the core does, in its order and words (`invalid_argument`, `bad_payload`,
 * `freed`, `empty_event_name`, `too_large`), so a follower throws what a leader would; `data`
 * becomes its JSON text (`undefined`, or what `JSON.stringify` skips, is `null`).
 */
export function checkSend(name: unknown, data: unknown, freed: boolean): { name: string; json: string } {
  if (typeof name !== 'string') throw sockError('invalid_argument', 'the event name must be a string');
  let json: string | undefined;
  try {
    json = data === undefined ? 'null' : JSON.stringify(data);
  } catch (e) {
    throw sockError('bad_payload', `data is not JSON-serializable: ${toWire(e).message}`);
  }
  if (freed) throw sockError('freed', 'the client was freed');
  if (name === '') throw sockError('empty_event_name', 'event name must not be empty');
  json ??= 'null';
  const size = utf8(JSON.stringify(name)) + utf8(json) + SEND_ENVELOPE_BYTES;
  if (size > FRAME_LIMIT) throw sockError('too_large', `frame of ${size} bytes exceeds the limit of ${FRAME_LIMIT} bytes`);
  return { name, json };
}

/** `{ code, message }` of anything thrown or emitted (a core error, a DOMException, …). */
export function toWire(e: unknown): WireError {
  const x = e as { code?: unknown; message?: unknown; name?: unknown } | null;
  const code = typeof x?.code === 'string' ? x.code : 'internal';
  const message = typeof x?.message === 'string' ? x.message : String(e);
  return { code, message };
}

export function fromWire(w: WireError, extra?: Record<string, unknown>): Error {
  return sockError(w.code, w.message, extra);
}

/** A send or request a tab made and has not seen settled, as it offers it to a (new) leader. */
export interface Claim {
  local: number;
  /** The send id, once a leader took it (then a new leader restores it under that id). */
  id?: number;
  /** The user the leader tagged it with (see `Outbox`). */
  owner?: string | null;
  name: string;
  json: string;
  /** Present for a `request()`: the milliseconds it may still wait. */
  timeoutMs?: number;
}

/** Where the group's session stood: what a new leader resumes from. */
export interface Point {
  session: string;
  seq: number;
}

/** What a leader tells every tab (on taking over, and to each new tab). */
export interface Status {
  cid: string;
  change: StateChange | null;
  /** Whether the group wants to be connected (last connect() / reconnect() / disconnect(), or a final stop). */
  desired: boolean;
  /** The union of the tabs' rooms. */
  rooms: string[];
  /** Live tabs, the leader's included. */
  tabs: number;
  /** The next send id the leader's core will use (a new leader starts above it). */
  next: number;
  /** The user the group last authenticated as. */
  user: string | null;
  session: string | null;
}

/** Messages to the leader. `from` is the sending tab. */
export type ToLeader =
  | {
      t: 'hello';
      from: string;
      rooms: string[];
      visible: boolean;
      point: Point | null;
      claims: Claim[];
      intent: Intent | null;
    }
  | { t: 'send'; from: string; claim: Claim }
  | { t: 'join' | 'leave'; from: string; room: string }
  | { t: 'intent'; from: string; intent: Intent }
  | { t: 'vis'; from: string; visible: boolean }
  | { t: 'stats?'; from: string }
  | { t: 'bye'; from: string };

/** A connect(), reconnect() or disconnect() a tab made, numbered so the leader can confirm it. */
export interface Intent {
  n: number;
  op: 'connect' | 'reconnect' | 'disconnect';
}

/** Messages from the leader: `to` names the one tab it is for, else every tab. */
export type FromLeader =
  | ({ t: 'leader'; from: string; to?: string } & Status)
  | { t: 'state'; from: string; change: StateChange; desired: boolean; next: number; session: string | null }
  | { t: 'ev'; from: string; name: string; data: unknown; seq: number | null; session: string | null }
  | { t: 'err'; from: string; error: WireError }
  | { t: 'acc'; from: string; to: string; local: number; id: number; owner: string | null }
  | { t: 'done'; from: string; to: string; local: number; ok: boolean; data?: unknown; error?: WireError }
  | { t: 'ok'; from: string; to: string; n: number }
  | { t: 'stats'; from: string; to: string; stats: Record<string, unknown> }
  | { t: 'next'; from: string; next: number }
  | { t: 'rooms'; from: string; rooms: string[]; tabs: number }
  | { t: 'resign'; from: string; point: Point | null; next: number };

export type Message = ToLeader | FromLeader;

/** The counters before a leader has reported any (a follower's `stats()` then). */
export function emptyStats(): ClientStats {
  return {
    state: 'disconnected',
    timeInStateMs: 0,
    attempt: 0,
    reconnects: 0,
    lastRttMs: null,
    outboxDepth: 0,
    outboxBytes: 0,
    framesIn: 0,
    framesOut: 0,
    duplicatesDropped: 0,
    rooms: 0,
    debug: {
      closures: 0,
      sockets: 0,
      pageListeners: 0,
      listeners: 0,
      stateListeners: 0,
      pendingRequests: 0,
      tokenFetches: 0,
      timerArmed: false,
    },
  };
}
