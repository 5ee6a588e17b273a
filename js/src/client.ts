// `SocklineClient`, the package's public class: the wasm core client's API, shared by the tabs
// of one app. Each tab keeps its own listeners, its unacked sends and requests (under ids of
// its own) and its rooms; one tab, the leader, runs the connection (see tabs/leader.ts) and the
// others reach it over a BroadcastChannel. Without sharing the tab leads a group of one.
import { SocklineClient as Core } from './sockline.js';
import type { ClientOptions as CoreOptions, ClientPayload, ClientStats as CoreStats, StateChange } from './sockline.js';
import { Emitter } from './tabs/emitter.js';
import { Leader, type Host, type Known } from './tabs/leader.js';
import { hasLocks, heldWith, hold, watch } from './tabs/locks.js';
import { Pendings } from './tabs/pending.js';
import { Seen } from './tabs/seen.js';
import { claimCid } from './tabs/solo.js';
import { Outbox, hasIndexedDb, local, randomId } from './tabs/store.js';
import { checkSend, emptyStats, fromWire, sockError, toWire } from './tabs/wire.js';
import type { Claim, FromLeader, Intent, Message, Point, ToLeader } from './tabs/wire.js';
import type { ClientOptions, ClientStats, EventMap } from './index.js';

const DEFAULT_TIMEOUT_MS = 10_000;

const hasChannel = () => typeof BroadcastChannel === 'function';

const invalidOptions = (message: string) => sockError('invalid_options', message);
const freed = () => sockError('freed', 'the client was freed');

/**
 * A reconnecting WebSocket client; with `shareAcrossTabs` (the default where the browser has
 * Web Locks and BroadcastChannel) every tab of the app on one origin shares one connection.
 *
 * ```js
 * import init, { SocklineClient } from 'sockline';
 * await init();
 * const client = new SocklineClient({ url: 'wss://example.com/ws', getToken: fetchToken });
 * client.on('new_notification', (n) => console.log(n.title));
 * client.connect();
 * ```
 */
export class SocklineClient {
  readonly #tab = randomId();
  readonly #options: CoreOptions;
  readonly #scope: string;
  readonly #sharing: boolean;
  readonly #persist: boolean;
  #cid: string;
  #leader: Leader | null = null;
  #store: Outbox | null = null;
  #channel: BroadcastChannel | null = null;
  readonly #emitter = new Emitter();
  readonly #pending: Pendings;
  #nextLocal = 1;
  readonly #rooms = new Set<string>();
  #visible = true;
  #intent: Intent | null = null;
  #intents = 0;
  #change: StateChange | null = null;
  #known: Known = { point: null, next: 0, desired: false, rooms: [], user: null, change: null };
  /** The durable seqs this tab has delivered, per session. */
  readonly #seen = new Seen();
  #leaderTab: string | null = null;
  #tabs = 1;
  #statsSnapshot: CoreStats | null = null;
  #statsAsked = false;
  /** The tab lock is held and the hello sent: messages to the leader may go out. */
  #joined = false;
  #tabRequested = false;
  readonly #explicitCid: string | undefined;
  #suspended = false;
  #freed = false;
  #releaseTab: (() => void) | null = null;
  #releaseLeader: (() => void) | null = null;
  #releaseClaim: (() => void) | null = null;
  #queued: AbortController | null = null;
  readonly #cleanups: Array<() => void> = [];

  /**
   * Creates a client in `disconnected`; nothing happens until `connect()`. Throws an `Error`
   * with code `invalid_options` when an option is missing or mistyped.
   */
  constructor(options: ClientOptions) {
    // Not an object: the core says so, in its words.
    if (options === null || typeof options !== 'object') new Core(options as never);
    const { shareAcrossTabs, key = '', persist, ...rest } = options;
    if (shareAcrossTabs !== undefined && typeof shareAcrossTabs !== 'boolean') throw invalidOptions('`shareAcrossTabs` must be a boolean');
    if (persist !== undefined && typeof persist !== 'boolean') throw invalidOptions('`persist` must be a boolean');
    if (typeof key !== 'string') throw invalidOptions('`key` must be a string');
    // The core checks everything else (and throws the same errors it always did).
    const probe = new Core({ ...rest, followPageVisibility: false } as CoreOptions);
    this.#cid = rest.clientId ?? probe.clientId;
    probe.free();
    this.#options = rest;
    this.#explicitCid = rest.clientId;
    this.#pending = new Pendings(rest.outbox?.maxMessages ?? 1000, rest.outbox?.maxBytes ?? 1024 * 1024);
    this.#scope = `sockline:${key}:${rest.url}`;
    this.#sharing = (shareAcrossTabs ?? true) && hasLocks() && hasChannel();
    this.#persist = (persist ?? true) && hasLocks() && hasIndexedDb();
    if (typeof document !== 'undefined') {
      this.#visible = document.visibilityState !== 'hidden';
      this.#listen(document, 'visibilitychange', () => {
        this.#visible = document.visibilityState !== 'hidden';
        this.#toLeader({ t: 'vis', from: this.#tab, visible: this.#visible });
      });
    }
    if (this.#sharing) this.#startShared();
    else this.#startAlone();
  }

  // ---- the public API ----

  /** Listens for `name`; returns the function that stops listening. */
  on<K extends keyof EventMap>(name: K, listener: (data: EventMap[K]) => void): () => void {
    if (typeof name !== 'string') throw sockError('invalid_argument', 'the event name must be a string');
    if (typeof listener !== 'function') throw sockError('invalid_argument', 'the listener must be a function');
    if (this.#freed) throw freed();
    return this.#emitter.on(name, listener as (data: never) => void);
  }

  /** Listens for state changes (`{ state, attempt, reason, message, nextRetryMs }`). */
  onState(listener: (change: StateChange) => void): () => void {
    if (typeof listener !== 'function') throw sockError('invalid_argument', 'the listener must be a function');
    if (this.#freed) throw freed();
    return this.#emitter.onState(listener);
  }

  /**
   * Queues an event for the server (kept and resent until acknowledged); returns its id, which
   * the `ack` event carries. Throws `outbox_full`, `too_large`, `empty_event_name` or
   * `bad_payload`.
   */
  send<K extends string>(name: K, data?: ClientPayload<K>): number {
    const claim = this.#claim(name, data);
    this.#pending.add({ claim });
    try {
      this.#toLeader({ t: 'send', from: this.#tab, claim });
    } catch (e) {
      this.#pending.take(claim.local);
      throw e;
    }
    return claim.local;
  }

  /** Sends an event and resolves with the server's ack data (rejects with a `SocklineError`). */
  request<T = unknown, K extends string = string>(
    name: K,
    data?: ClientPayload<K>,
    options?: { timeoutMs?: number },
  ): Promise<T> {
    try {
      const claim = this.#claim(name, data);
      const t = options?.timeoutMs;
      if (typeof t === 'number' && !(Number.isFinite(t) && t >= 0)) {
        throw sockError('invalid_argument', '`timeoutMs` must be a non-negative number');
      }
      const timeoutMs = typeof t === 'number' ? t : DEFAULT_TIMEOUT_MS;
      claim.timeoutMs = timeoutMs;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          if (this.#pending.take(claim.local)) {
            reject(sockError('timeout', `no ack within ${timeoutMs} ms`, { id: claim.local }));
          }
        }, timeoutMs);
        const deadline = Date.now() + timeoutMs;
        try {
          this.#pending.add({ claim, req: { resolve: resolve as (v: unknown) => void, reject, timer, deadline } });
        } catch (e) {
          clearTimeout(timer);
          throw e;
        }
        this.#toLeader({ t: 'send', from: this.#tab, claim });
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Joins `room` (now if connected, else on the next session); re-joined after every new session. */
  join(room: string): void {
    if (typeof room !== 'string' || room === '') throw sockError('invalid_argument', 'the room name must not be empty');
    if (this.#freed) throw freed();
    if (this.#rooms.has(room)) return;
    this.#rooms.add(room);
    this.#toLeader({ t: 'join', from: this.#tab, room });
  }

  /** Leaves `room` (for this tab: the connection leaves when no tab wants it). */
  leave(room: string): void {
    if (this.#freed) throw freed();
    if (!this.#rooms.delete(room)) return;
    this.#toLeader({ t: 'leave', from: this.#tab, room });
  }

  /** Starts connecting (from `disconnected`, whatever the reason), with the backoff reset. */
  connect(): void {
    if (this.#freed) throw freed();
    this.#command('connect');
  }

  /**
   * Connects again now with the backoff reset, whatever the state (a live socket is closed and
   * replaced); queued sends and pending requests are kept and go out on the new socket.
   */
  reconnect(): void {
    if (this.#freed) throw freed();
    this.#command('reconnect');
  }

  /**
   * Closes the socket and stays `disconnected` until the next `connect()` (from any tab: the
   * connection is the group's).
   */
  disconnect(): void {
    if (!this.#freed) this.#command('disconnect');
  }

  /** The state's name (the leader's, mirrored). */
  get state(): StateChange['state'] {
    return this.#change?.state ?? 'disconnected';
  }

  /** The client id sent in `auth` (shared by the tabs of a group, kept across reloads when persisting). */
  get clientId(): string {
    return this.#cid;
  }

  /** Whether this tab runs the connection. */
  get isLeader(): boolean {
    return this.#leader !== null;
  }

  /**
   * Counters (the leader's, as of its last report on a follower), whether this tab leads, and
   * under `debug` what this tab holds.
   */
  stats(): ClientStats {
    const own = this.#leader?.stats();
    if (!own && this.#joined && !this.#statsAsked && this.#leaderTab) {
      this.#statsAsked = true;
      this.#toLeader({ t: 'stats?', from: this.#tab });
    }
    const base = own ?? this.#statsSnapshot ?? emptyStats();
    const debug = own ? own.debug : emptyStats().debug;
    const pendingRequests = this.#pending.requests;
    return {
      ...base,
      state: this.state,
      isLeader: this.isLeader,
      leader: this.#leaderTab,
      tab: this.#tab,
      tabs: this.#leader ? this.#leader.tabs : this.#tabs,
      sharing: this.#sharing,
      persist: this.#persist,
      debug: { ...debug, ...this.#emitter.counts, pendingRequests },
    };
  }

  /**
   * Releases everything this tab holds: its listeners, its locks, its channel, and (on the
   * leader) the connection, which another tab then takes over. Pending requests reject with
   * `freed`; plain sends already taken by a leader still go out (and stay stored when persisting).
   */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    for (const undo of this.#cleanups.splice(0)) undo();
    for (const p of this.#pending.clear()) {
      if (!p.req) continue;
      clearTimeout(p.req.timer);
      p.req.reject(sockError('freed', 'the client was freed before the request was acknowledged', { id: p.claim.local }));
    }
    this.#step(true);
    this.#releaseClaim?.();
    this.#channel?.close();
    this.#store?.close();
    this.#emitter.clear();
  }

  // ---- roles ----

  /** Sharing: join the group (tab lock, then hello) and queue for the leader lock. */
  #startShared(): void {
    this.#cid = this.#groupCid();
    this.#channel = new BroadcastChannel(this.#scope);
    this.#channel.onmessage = (ev: MessageEvent<Message>) => this.#onMessage(ev.data);
    if (typeof window !== 'undefined') {
      // A page in the back-forward cache or frozen cannot answer: it leaves the group (and
      // hands the connection on) until it comes back.
      this.#listen(window, 'pagehide', () => this.#suspend());
      this.#listen(window, 'pageshow', (e) => (e as PageTransitionEvent).persisted && this.#resume());
      this.#listen(document, 'freeze', () => this.#suspend());
      this.#listen(document, 'resume', () => this.#resume());
    }
    void this.#openStore().then(() => this.#resume());
  }

  /** No sharing: lead alone; when persisting, first claim a stored queue no other tab holds. */
  #startAlone(): void {
    if (!this.#persist) return this.#lead(this.#cid);
    void this.#openStore().then(async () => {
      const store = this.#store;
      if (this.#freed) return;
      const held = (release: () => void) => (this.#releaseClaim = release);
      const cid = this.#explicitCid ?? (store ? await claimCid(this.#scope, store, this.#cid, held) : this.#cid);
      if (this.#freed) return this.#releaseClaim?.();
      this.#lead(cid);
    });
  }

  /** With `persist`: the durable outbox (a failure is an `error` event; the tab goes on without). */
  async #openStore(): Promise<void> {
    if (!this.#persist) return;
    try {
      const store = await Outbox.open((m) => this.#storageError(m));
      if (this.#freed) store.close();
      else this.#store = store;
    } catch (e) {
      this.#storageError(`IndexedDB is not available: ${toWire(e).message}`);
    }
  }

  /** (Re)joins the group: the tab lock first (the leader watches it), then hello; queues for leadership. */
  #resume(): void {
    if (this.#freed || !this.#channel) return;
    this.#suspended = false;
    const here = () => !this.#freed && !this.#suspended;
    if (!this.#tabRequested) {
      this.#tabRequested = true;
      const still = () => ((this.#tabRequested = false), here());
      void hold(`${this.#scope}:tab:${this.#tab}`, (release) => {
        this.#releaseTab = release;
        this.#joined = true;
        if (!this.#leader) this.#post(this.#hello());
      }, { still });
    }
    if (!this.#queued && !this.#leader) {
      const queued = new AbortController();
      this.#queued = queued;
      const still = () => here() && !queued.signal.aborted;
      void hold(`${this.#scope}:leader`, (release) => {
        this.#releaseLeader = release;
        this.#lead(this.#groupCid());
      }, { signal: queued.signal, still });
    }
  }

  #suspend(): void {
    if (this.#freed || this.#suspended || !this.#channel) return;
    this.#suspended = true;
    this.#step(false);
  }

  /** Leaves the group: resigns if leading, else says bye; releases the locks. */
  #step(freeing: boolean): void {
    if (this.#leader) {
      const leader = this.#leader;
      this.#leader = null;
      const { point, next } = leader.stop();
      this.#resigned(point, next);
      this.#leaderTab = null;
      this.#releaseLeader?.();
      this.#releaseLeader = null;
      if (!freeing) this.#emit('leader_changed', { isLeader: false, leader: null });
    } else if (this.#joined) {
      this.#post({ t: 'bye', from: this.#tab });
    }
    this.#queued?.abort();
    this.#queued = null;
    this.#joined = false;
    this.#releaseTab?.();
    this.#releaseTab = null;
  }

  #lead(cid: string): void {
    this.#cid = cid;
    const host: Host = {
      tab: this.#tab,
      scope: this.#scope,
      cid,
      options: this.#options,
      shared: this.#sharing,
      store: this.#store,
      durable: this.#sharing || this.#store !== null,
      known: { ...this.#known, point: this.#seen.point(), change: this.#change },
      hello: () => this.#hello(),
      deliver: (msg) => this.#receive(msg),
      post: (msg) => this.#post(msg),
      liveTabs: async () => (await heldWith(`${this.#scope}:tab:`)).filter((t) => t !== this.#tab),
      watch: (tab, signal, gone) => watch(`${this.#scope}:tab:${tab}`, signal, gone),
      storageError: (m) => this.#storageError(m),
    };
    const leader = new Leader(host);
    this.#statsSnapshot = null;
    this.#leader = leader;
    this.#leaderTab = this.#tab;
    this.#queued = null;
    this.#emit('leader_changed', { isLeader: true, leader: this.#tab });
    void leader.start();
  }

  /**
   * The group's client id: read (or first written) under the leader lock, so every leader of
   * the group uses the one the durable outbox is keyed by.
   */
  #groupCid(): string {
    if (this.#explicitCid) return this.#explicitCid;
    const key = `${this.#scope}:cid`;
    const cid = local.get(key) ?? this.#cid;
    local.set(key, cid);
    return cid;
  }

  // ---- messages ----

  #toLeader(msg: ToLeader): void {
    if (this.#leader) this.#leader.handle(msg, true);
    else if (this.#joined) this.#post(msg);
    // Else the tab's state (rooms, sends, intent) goes with its next hello.
  }

  #post(msg: Message): void {
    try {
      this.#channel?.postMessage(msg);
    } catch (e) {
      this.#emit('error', sockError('bad_payload', `could not pass a message to the other tabs: ${toWire(e).message}`));
    }
  }

  #hello(): Extract<ToLeader, { t: 'hello' }> {
    return {
      t: 'hello',
      from: this.#tab,
      rooms: [...this.#rooms],
      visible: this.#visible,
      point: this.#seen.point(),
      claims: this.#pending.claims(Date.now()),
      intent: this.#intent,
    };
  }

  #onMessage(msg: Message): void {
    if (this.#freed || this.#suspended || !msg || typeof msg !== 'object') return;
    if ('to' in msg && msg.to !== undefined && msg.to !== this.#tab) return;
    switch (msg.t) {
      case 'hello':
      case 'send':
      case 'join':
      case 'leave':
      case 'intent':
      case 'vis':
      case 'stats?':
      case 'bye':
        this.#leader?.handle(msg);
        return;
      default:
        this.#receive(msg);
    }
  }

  /** What a leader says (this tab's own leader included, directly). */
  #receive(msg: FromLeader): void {
    switch (msg.t) {
      case 'leader': {
        if (this.#leader) return; // (two leaders cannot be: the lock is one)
        const changed = this.#leaderTab !== msg.from;
        if (changed) this.#statsAsked = false;
        this.#leaderTab = msg.from;
        this.#cid = msg.cid;
        this.#known.desired = msg.desired;
        this.#known.rooms = msg.rooms;
        this.#known.next = Math.max(this.#known.next, msg.next);
        this.#known.user = msg.user;
        this.#tabs = msg.tabs;
        if (msg.session) this.#seen.current = msg.session;
        if (msg.change) this.#setState(msg.change, true);
        // A new leader's announcement: tell it what this tab has.
        if (msg.to === undefined && this.#joined && !this.#leader) this.#post(this.#hello());
        if (changed) this.#emit('leader_changed', { isLeader: this.isLeader, leader: msg.from });
        return;
      }
      case 'state':
        // Messages of one sender arrive in order, so after a leader's `resign` nothing of that
        // leadership follows; a dead leader's late messages lose to the new one's `leader`.
        if (this.#leaderTab !== msg.from) {
          if (this.#leaderTab !== null) return;
          this.#leaderTab = msg.from;
        }
        this.#known.desired = msg.desired;
        this.#known.next = Math.max(this.#known.next, msg.next);
        if (msg.session) this.#seen.current = msg.session;
        this.#statsSnapshot = null;
        this.#setState(msg.change);
        return;
      case 'ev':
        return this.#event(msg.name, msg.data, msg.seq, msg.session);
      case 'err':
        return this.#emit('error', fromWire(msg.error));
      case 'acc': {
        const p = this.#pending.get(msg.local);
        if (p) {
          p.claim.id = msg.id;
          p.claim.owner = msg.owner;
        }
        this.#known.next = Math.max(this.#known.next, msg.id + 1);
        return;
      }
      case 'done':
        return this.#settle(msg.local, msg.ok, msg.data, msg.error);
      case 'ok':
        if (this.#intent?.n === msg.n) this.#intent = null;
        return;
      case 'stats':
        this.#statsSnapshot = msg.stats as unknown as CoreStats;
        this.#statsAsked = false;
        return;
      case 'next':
        this.#known.next = Math.max(this.#known.next, msg.next);
        return;
      case 'rooms':
        this.#known.rooms = msg.rooms;
        this.#tabs = msg.tabs;
        return;
      case 'resign':
        if (this.#leaderTab === msg.from && !this.#leader) this.#leaderTab = null;
        this.#statsAsked = false;
        this.#resigned(msg.point, msg.next);
        return;
    }
  }

  /** A state change; `status`: the state a leader reported in passing (told only if it differs). */
  #setState(change: StateChange, status = false): void {
    const prev = this.#change;
    this.#change = change;
    if (status && prev && JSON.stringify(prev) === JSON.stringify(change)) return;
    this.#emitter.state(change);
  }

  /** A server event (or `resumed` / `resume_failed`): once per tab, whichever leader relayed it. */
  #event(name: string, data: unknown, seq: number | null, session: string | null): void {
    if (seq === null || session === null || this.#seen.fresh(session, seq)) this.#emit(name, data);
  }

  /** A leader stopped at `point`, with send id `next` not yet used (its relays all came before). */
  #resigned(point: Point | null, next: number): void {
    this.#known.next = Math.max(this.#known.next, next);
    if (point) this.#seen.reached(point);
  }

  #settle(localId: number, ok: boolean, data: unknown, error: { code: string; message: string } | undefined): void {
    const p = this.#pending.take(localId);
    if (!p) return; // settled already (an old and a new leader both answered)
    if (p.req) {
      clearTimeout(p.req.timer);
      if (ok) p.req.resolve(data);
      else p.req.reject(fromWire(error ?? { code: 'rejected', message: '' }, { id: localId }));
      return;
    }
    if (ok) return this.#emit('ack', { id: localId, ok: true, data });
    // As the core reports a failed plain send: an `error` event, then the `ack`.
    const w = error ?? { code: 'rejected', message: '' };
    this.#emit('error', sockError(w.code, `send ${localId} failed: ${w.message}`, { id: localId }));
    this.#emit('ack', { id: localId, ok: false, error: fromWire(w, { id: localId }) });
  }

  // ---- helpers ----

  /** Checks a send as the core does, and numbers it for this tab. */
  #claim(name: unknown, data: unknown): Claim {
    return { local: this.#nextLocal++, ...checkSend(name, data, this.#freed) };
  }

  #command(op: Intent['op']): void {
    this.#intent = { n: ++this.#intents, op };
    this.#known.desired = op !== 'disconnect';
    this.#toLeader({ t: 'intent', from: this.#tab, intent: this.#intent });
  }

  #storageError(message: string): void {
    this.#emit('error', sockError('storage_failed', `${message}; unacked sends are kept in memory only`));
  }

  #emit(name: string, data: unknown): void {
    this.#emitter.emit(name, data);
  }

  #listen(target: EventTarget, type: string, f: (e: Event) => void): void {
    target.addEventListener(type, f);
    this.#cleanups.push(() => target.removeEventListener(type, f));
  }
}

if (typeof Symbol.dispose === 'symbol') {
  (SocklineClient.prototype as unknown as Record<symbol, () => void>)[Symbol.dispose] = SocklineClient.prototype.free;
}

export interface SocklineClient {
  /** `free()`, for `using client = new SocklineClient(…)`. */
  [Symbol.dispose](): void;
}
