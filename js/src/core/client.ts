// The browser driver of the wasm core: `SocklineClient` of `sockline.js`, one connection in one
// tab (the tab-sharing client in ../client.ts runs one of these in its leader tab). It only
// moves bytes and time — opens the sockets the core asks for and feeds their events, arms the
// one timer at the core's deadline, reports page events, calls `getToken()`, and hands every
// output to the app's listeners and promises. What anything means, what to do next and what to
// report is decided by the core and the shell (src/core, src/shell.rs, behind src/wasm).
//
// The drain rule, as in every driver: after any input or command, drain the core (actions
// first, then `getToken()` calls, then outputs), repeat until a drain is empty, then re-arm the
// timer. A listener that calls back into the client (even `free()`) leaves the draining to the
// loop already running, and whatever it throws is caught and reported as an `error` event.
//
// Sockets, the timer, page listeners and promises reach the client through a `WeakRef`; what
// they hold (`Held`) is released by `free()` or, once the client is unreachable, by the garbage
// collector (`collected`).
import {
  BINARY, call, CLOSED, CONNECT, create, DISCONNECT, DRAIN, FRAME, FREE, JOIN, LEAVE, NEXT_SEND_ID,
  OPENED, PAGE, RECONNECT, REQUEST, RESTORE, RESUME_FROM, RESUME_POINT, SEND, SOCKET_ERROR,
  STATE, STATS, TIMEOUT, TOKEN, USER,
} from './abi.js';
import type { ClientOptions, ClientPayload, ClientStats, ConnectionState, EventMap, StateChange } from './types.js';
import { readOptions } from './options.js';
import { describe, sockError } from './util.js';

/** A registered listener (an object per registration: the same function twice counts twice). */
interface Entry {
  f: (...args: never[]) => void;
}
type Resolvers = [(value: unknown) => void, (error: unknown) => void];

/** What one client holds in the page, apart from the client object itself. */
interface Held {
  /** The core's handle. */
  h: number;
  ws: WebSocket | null;
  /** The core's id of `ws`. */
  sid: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The deadline `timer` is armed for. */
  at: number | null;
  /** Removes each page listener. */
  page: Array<() => void>;
  /** `request()` promises by send id (the shell's pending table, mirrored). */
  pending: Map<number, Resolvers>;
  /** Closures handed to the page (socket handlers, page listeners, the timer): leak checks. */
  closures: number;
  /** `getToken()` promises not settled yet. */
  fetches: number;
  freed: boolean;
}

/** An error object of the core (`{ code, message, id? }`) as a `SocklineError`. */
const fromCore = (e: { code: string; message: string }) => sockError(e.code, e.message, e);
const invalid = (message: string) => sockError('invalid_argument', message);
const freed = () => sockError('freed', 'the client was freed');

/** `JSON.stringify(data)`; `undefined` (and what `JSON.stringify` skips, e.g. a function) is `null`. */
function json(data: unknown): string {
  try {
    return (data === undefined ? undefined : JSON.stringify(data)) ?? 'null';
  } catch (e) {
    throw sockError('bad_payload', `data is not JSON-serializable: ${describe(e)}`);
  }
}

function send(name: unknown, data: unknown): [string, string] {
  if (typeof name !== 'string') throw invalid('the event name must be a string');
  return [name, json(data)];
}

function dropSocket(r: Held): void {
  const ws = r.ws;
  if (!ws) return;
  r.ws = null;
  ws.onopen = ws.onmessage = ws.onclose = null;
  r.closures -= 3;
  // 1000, as everywhere else: a bare close() would reach the server as 1005.
  if (ws.readyState < 2) ws.close(1000);
}

function release(r: Held): void {
  if (r.freed) return;
  r.freed = true;
  dropSocket(r);
  clearTimeout(r.timer);
  r.timer = undefined;
  for (const remove of r.page.splice(0)) remove();
  const [error] = call(r.h, FREE);
  const e = fromCore(error);
  for (const [, reject] of r.pending.values()) reject(e);
  r.pending.clear();
}

const collected = new FinalizationRegistry(release);

/**
 * A reconnecting WebSocket client for one tab.
 *
 * ```js
 * import init, { SocklineClient } from 'sockline';
 * await init();
 * const client = new SocklineClient({ url: 'wss://example.com/ws', getToken: fetchToken });
 * const off = client.on('new_notification', (n) => console.log(n.title));
 * client.onState(({ state, nextRetryMs }) => render(state, nextRetryMs));
 * client.connect();
 * ```
 */
export class SocklineClient {
  readonly #r: Held;
  /** `#feed` through a `WeakRef`: what sockets, the timer, page listeners and promises call. */
  readonly #input: (op: number, a?: number, b?: number, ...strings: string[]) => void;
  readonly #named = new Map<string, Set<Entry>>();
  readonly #states = new Set<Entry>();
  readonly #any = new Set<Entry>();
  readonly #getToken: (() => unknown) | undefined;
  readonly #WebSocket: (new (url: string) => WebSocket) | undefined;
  readonly #cid: string;
  readonly #debug: boolean;
  #pumping = false;

  /**
   * Creates a client in `disconnected`; nothing happens until `connect()`. Throws an `Error`
   * with code `invalid_options` when an option is missing or mistyped.
   */
  constructor(options: ClientOptions) {
    const o = readOptions(options);
    const h = create(o.nums, o.token === undefined ? 0 : 1, Math.random() * 2 ** 53, o.url, o.clientId, o.token ?? '');
    this.#getToken = o.getToken;
    this.#WebSocket = o.WebSocket;
    this.#cid = o.clientId;
    this.#debug = o.debug;
    const follow = o.follow;
    const r: Held = (this.#r = {
      h, ws: null, sid: 0, timer: undefined, at: null, page: [], pending: new Map(), closures: 0, fetches: 0, freed: false,
    });
    collected.register(this, r, r);
    const weak = new WeakRef(this);
    const input = (this.#input = (op, a = 0, b = 0, ...strings) => {
      const client = weak.deref();
      if (client) client.#feed(op, a, b, ...strings);
    });
    if (typeof window === 'object' && window) {
      const listen = (target: EventTarget, type: string, f: (e: Event) => void) => {
        target.addEventListener(type, f);
        r.page.push(() => target.removeEventListener(type, f));
        r.closures++;
      };
      const page = (event: number, restored = 0) => input(PAGE, event, restored);
      const doc = window.document;
      const online = () => window.navigator?.onLine !== false;
      if (doc && follow) listen(doc, 'visibilitychange', () => page(doc.visibilityState === 'hidden' ? 1 : 0));
      listen(window, 'online', () => page(2));
      listen(window, 'offline', () => page(3));
      listen(window, 'pagehide', () => page(4));
      listen(window, 'pageshow', (e) => page(5, (e as PageTransitionEvent).persisted && online() ? 1 : 0));
      if (doc && follow && doc.visibilityState === 'hidden') page(1);
      if (!online()) page(3);
    }
  }

  /** Starts connecting (from `disconnected`, whatever the reason), with the backoff reset. */
  connect(): void {
    this.#cmd(CONNECT);
  }

  /**
   * Connects again now with the backoff reset, whatever the state (a live socket is closed and
   * replaced); queued sends and pending requests are kept and go out on the new socket.
   */
  reconnect(): void {
    this.#cmd(RECONNECT);
  }

  /**
   * Closes the socket and stays `disconnected` until the next `connect()`: neither the page
   * becoming visible nor the network coming back undoes it.
   */
  disconnect(): void {
    if (!this.#r.freed) this.#cmd(DISCONNECT);
  }

  /** Joins `room` now if connected, else on the next session; it is re-joined after every new session. */
  join(room: string): void {
    this.#cmd(JOIN, 0, 0, typeof room === 'string' ? room : '');
  }

  /** Leaves `room` and removes it from the room set. */
  leave(room: string): void {
    this.#cmd(LEAVE, 0, 0, String(room));
  }

  /**
   * Adds a listener for a server event (or `error`, `ack`, `resumed`, `resume_failed`); returns
   * the function that removes it. A listener that throws is reported as an `error` event.
   */
  on<K extends keyof EventMap>(name: K, listener: (data: EventMap[K]) => void): () => void {
    if (typeof name !== 'string') throw invalid('the event name must be a string');
    let set = this.#named.get(name);
    if (!set) this.#named.set(name, (set = new Set()));
    return this.#add(set, listener);
  }

  /** Adds a listener for state changes (`{ state, attempt, reason, message, nextRetryMs }`). */
  onState(listener: (change: StateChange) => void): () => void {
    return this.#add(this.#states, listener);
  }

  /** Adds a listener for every server event: `listener(name, data, seq)` (`seq` is `null` for a volatile event). */
  onAny(listener: (name: string, data: unknown, seq: number | null) => void): () => void {
    return this.#add(this.#any, listener);
  }

  /**
   * Queues an event for the server (sent at once when connected, kept and resent until
   * acknowledged); returns its id. Throws `outbox_full`, `too_large`, `empty_event_name` or
   * `bad_payload`.
   */
  send<K extends string>(name: K, data?: ClientPayload<K>): number {
    return this.#cmd(SEND, 0, 0, ...send(name, data))[0];
  }

  /**
   * Sends an event and resolves with the server's ack data (rejects with the server's error
   * code, or `timeout` after `timeoutMs`, default 10 s).
   */
  request<T = unknown, K extends string = string>(
    name: K,
    data?: ClientPayload<K>,
    options?: { timeoutMs?: number },
  ): Promise<T> {
    let promise: Promise<T>;
    try {
      const args = send(name, data);
      const t: unknown = (options as { timeoutMs?: unknown } | null | undefined)?.timeoutMs;
      promise = new Promise<T>((resolve, reject) => {
        const [id] = this.#call(REQUEST, typeof t === 'number' ? 1 : 0, t as number, ...args);
        this.#r.pending.set(id, [resolve as (value: unknown) => void, reject]);
      });
    } catch (e) {
      return Promise.reject(e);
    }
    this.#pump();
    return promise;
  }

  /**
   * Restores a send an earlier life of this client (same `clientId`) made and did not see
   * acked, under its original id; it goes out before newer sends, and, with `owner`, only in a
   * session of that user (another user's session drops it with an `ack` error `other_user`).
   * Throws `invalid_id`, `outbox_full`, `empty_event_name`, `bad_payload`.
   */
  restoreSend(id: number, name: string, data: unknown, owner?: string | null): void {
    this.#cmd(RESTORE, id, 0, ...send(name, data), ...(owner == null ? [] : [String(owner)]));
  }

  /**
   * Makes the next connection ask to resume `session` from `seq` (a point an earlier life of
   * this client, or another tab of it, reached). Ignored once a session exists.
   */
  resumeFrom(session: string, seq: number): void {
    this.#cmd(RESUME_FROM, seq, 0, String(session));
  }

  /**
   * Reports the page's visibility (when `followPageVisibility` is false, e.g. for a group of
   * tabs that pauses only when all of them are hidden).
   */
  setVisible(visible: boolean): void {
    this.#cmd(PAGE, visible ? 0 : 1);
  }

  /** The state's name: `disconnected`, `connecting`, `authenticating`, `connected` or `reconnecting`. */
  get state(): ConnectionState {
    return this.#call(STATE)[0];
  }

  /** The user the last `authenticated` named (`undefined` before one). */
  get userId(): string | undefined {
    return this.#call(USER)[0];
  }

  /** `{ session, seq }`: where the next session would resume (`null` before a session). */
  resumePoint(): { session: string; seq: number } | null {
    return this.#call(RESUME_POINT)[0];
  }

  /** The id the next `send()` will take. */
  get nextSendId(): number {
    return this.#call(NEXT_SEND_ID)[0];
  }

  /**
   * The client id sent in `auth` (the `clientId` option, or one drawn at construction): keep it
   * with unacked sends to resend them exactly once after a reload.
   */
  get clientId(): string {
    return this.#cid;
  }

  /**
   * Counters (`framesIn`, `reconnects`, `lastRttMs`, …) and what the driver holds (closures,
   * sockets, listeners) for leak checks.
   */
  stats(): ClientStats {
    const [stats] = this.#call(STATS);
    const r = this.#r;
    let listeners = 0;
    for (const set of this.#named.values()) listeners += set.size;
    stats.debug = {
      closures: r.closures,
      sockets: r.ws ? 1 : 0,
      pageListeners: r.page.length,
      listeners,
      stateListeners: this.#states.size,
      pendingRequests: r.pending.size,
      tokenFetches: r.fetches,
      timerArmed: r.timer !== undefined,
    };
    return stats;
  }

  /**
   * Closes the socket, cancels the timer, removes the page listeners and the listeners, and
   * rejects pending requests with `freed`; a client nothing references any more is freed by
   * the garbage collector.
   */
  free(): void {
    collected.unregister(this.#r);
    release(this.#r);
    this.#named.clear();
    this.#states.clear();
    this.#any.clear();
  }

  // ---- the driver ----

  /** A call on the core (`freed` once freed). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  #call(op: number, a = 0, b = 0, ...strings: string[]): any {
    if (this.#r.freed) throw freed();
    return call(this.#r.h, op, a, b, ...strings);
  }

  /** A command, then the drain rule (also when the command throws). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  #cmd(op: number, a = 0, b = 0, ...strings: string[]): any {
    try {
      return this.#call(op, a, b, ...strings);
    } finally {
      this.#pump();
    }
  }

  /** An input from the page (a socket, the timer, a page event, a token): fed, then drained. */
  #feed(op: number, a = 0, b = 0, ...strings: string[]): void {
    if (!this.#r.freed) this.#cmd(op, a, b, ...strings);
  }

  #pump(): void {
    const r = this.#r;
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!r.freed) {
        const [at, delay, ...records] = call(r.h, DRAIN);
        if (!records.length) {
          this.#rearm(at, delay);
          break;
        }
        const tokens: number[] = [];
        for (const [tag, a, b, c] of records) {
          if (tag === 0) this.#open(a, b);
          else if (tag === 1) this.#send(a, b);
          else if (tag === 2) this.#close(a, b, c);
          else if (tag === 3) tokens.push(a);
        }
        for (const request of tokens) this.#token(request);
        for (const record of records) if (record[0] > 3 && !r.freed) this.#deliver(record);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #open(id: number, url: string): void {
    const r = this.#r;
    const input = this.#input;
    dropSocket(r);
    let ws: WebSocket;
    try {
      // The app's constructor (e.g. the `ws` package in Node) or the global one.
      ws = new (this.#WebSocket ?? WebSocket)(url);
    } catch (e) {
      call(r.h, SOCKET_ERROR, id, 0, describe(e));
      return;
    }
    ws.onopen = () => input(OPENED, id);
    ws.onmessage = (e) => (typeof e.data === 'string' ? input(FRAME, id, 0, e.data) : input(BINARY, id));
    ws.onclose = (e) => {
      // Dropped first: a closed socket is never reused.
      if (r.ws === ws) dropSocket(r);
      input(CLOSED, id, e.code, e.reason);
    };
    r.ws = ws;
    r.sid = id;
    r.closures += 3;
  }

  #send(id: number, text: string): void {
    const r = this.#r;
    let error = 'socket is gone';
    if (r.ws && r.sid === id) {
      try {
        return r.ws.send(text);
      } catch (e) {
        error = describe(e);
      }
    }
    call(r.h, SOCKET_ERROR, id, 0, error);
  }

  #close(id: number, code: number, reason: string): void {
    const r = this.#r;
    const ws = r.ws;
    if (!ws || r.sid !== id) return;
    try {
      ws.close(code, reason);
    } catch {
      // Browsers accept only 1000 and 3000-4999 from scripts.
      ws.close();
    }
    dropSocket(r);
  }

  /** The one timer, at the core's deadline (`delay` ms from now). */
  #rearm(at: number | null, delay: number): void {
    const r = this.#r;
    if (r.timer !== undefined) {
      if (r.at === at) return;
      clearTimeout(r.timer);
      r.timer = undefined;
      r.closures--;
    }
    if (at === null) return;
    const input = this.#input;
    r.at = at;
    r.closures++;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      r.closures--;
      input(TIMEOUT);
    }, delay);
  }

  /** Calls `getToken()` (a string, or a promise of one) and feeds its answer. */
  #token(request: number): void {
    const r = this.#r;
    const input = this.#input;
    const done = (ok: number, text: string) => input(TOKEN, request, ok, text);
    const getToken = this.#getToken;
    if (!getToken) return done(0, 'no token configured');
    let value: unknown;
    try {
      value = getToken();
    } catch (e) {
      return done(0, `getToken threw: ${describe(e)}`);
    }
    if (typeof value === 'string') return done(1, value);
    r.fetches++;
    Promise.resolve(value).then(
      (token) => {
        r.fetches--;
        if (typeof token === 'string') done(1, token);
        else done(0, 'getToken did not resolve to a string');
      },
      (e) => {
        r.fetches--;
        done(0, `getToken rejected: ${describe(e)}`);
      },
    );
  }

  // ---- delivering outputs (the records of src/wasm/out.rs) ----

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  #deliver([tag, a, b, c, d, e, f]: any[]): void {
    switch (tag) {
      case 4: {
        const change: StateChange = { state: b, attempt: c, reason: d, message: e, nextRetryMs: f };
        if (this.#debug) console.log('[sockline]', `${a} -> ${b}`, change);
        return void this.#dispatch(this.#states, 'state', change);
      }
      case 5:
        this.#emit(a, b);
        for (const entry of [...this.#any]) {
          if (!this.#any.has(entry)) continue;
          try {
            (entry.f as (name: string, data: unknown, seq: number | null) => void)(a, b, c);
          } catch (thrown) {
            this.#thrown('onAny', thrown);
          }
        }
        return;
      case 6: {
        const settle = this.#r.pending.get(a);
        this.#r.pending.delete(a);
        if (b) settle?.[0](c);
        else settle?.[1](fromCore(c));
        return;
      }
      case 7:
        return void this.#emit('ack', b ? { id: a, ok: b, data: c } : { id: a, ok: b, error: fromCore(c) });
      case 8:
        return this.#error(fromCore(a));
      case 9:
        return void this.#emit('resumed', { missed: a });
      case 10:
        return void this.#emit('resume_failed', undefined);
    }
  }

  #add(set: Set<Entry>, f: unknown): () => void {
    if (typeof f !== 'function') throw invalid('the listener must be a function');
    if (this.#r.freed) throw freed();
    const entry: Entry = { f: f as Entry['f'] };
    set.add(entry);
    return () => void set.delete(entry);
  }

  /** Calls the listeners of `set` registered now and still registered when their turn comes. */
  #dispatch(set: Set<Entry> | undefined, name: string, value: unknown): boolean {
    let heard = false;
    for (const entry of set ? [...set] : []) {
      if (!set?.has(entry)) continue;
      heard = true;
      try {
        (entry.f as (value: unknown) => void)(value);
      } catch (thrown) {
        this.#thrown(name, thrown);
      }
    }
    return heard;
  }

  #emit(name: string, value: unknown): boolean {
    return this.#dispatch(this.#named.get(name), name, value);
  }

  /** An `error` event; with no `error` listener it goes to the console instead of vanishing. */
  #error(error: Error): void {
    if (!this.#emit('error', error)) console.warn('[sockline]', error);
  }

  /** What a listener threw, as an `error` event (or, thrown by an `error` listener, a console error). */
  #thrown(name: string, thrown: unknown): void {
    const error = sockError('listener_threw', `a \`${name}\` listener threw: ${describe(thrown)}`, { cause: thrown });
    if (name === 'error') console.error('[sockline]', error);
    else this.#error(error);
  }
}

if (typeof Symbol.dispose === 'symbol') {
  (SocklineClient.prototype as unknown as Record<symbol, () => void>)[Symbol.dispose] = SocklineClient.prototype.free;
}

export interface SocklineClient {
  /** `free()`, for `using client = new SocklineClient(…)`. */
  [Symbol.dispose](): void;
}
