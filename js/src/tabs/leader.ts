// The leader: the one tab of a group that runs the real connection (a wasm core client). It
// takes every tab's sends, requests, rooms and visibility (its own tab's directly, the others'
// over the channel), routes each ack back to the tab that sent, relays every state change and
// event to all tabs, and keeps unacked plain sends in the durable outbox. Without sharing, a
// tab is the leader of a group of one (no channel).
import { SocklineClient as Core } from '../sockline.js';
import type { ClientOptions as CoreOptions, ClientStats as CoreStats, SendAck, StateChange } from '../sockline.js';
import { local, type Outbox, type StoredSend } from './store.js';
import { toWire, type Claim, type FromLeader, type Intent, type Point, type Status, type ToLeader } from './wire.js';

/** How long a new leader waits for the live tabs' hellos before it connects anyway. */
const HELLO_WAIT_MS = 300;
/** Settled (tab, local) pairs remembered, so a late offer of a settled send is not sent again. */
const SETTLED_MEMORY = 1024;

/** What a tab knew of the group when it took over (from the previous leader's messages). */
export interface Known {
  point: Point | null;
  next: number;
  desired: boolean;
  rooms: string[];
  user: string | null;
  change: StateChange | null;
}

/** What the leader needs from the tab that runs it. */
export interface Host {
  tab: string;
  scope: string;
  cid: string;
  options: CoreOptions;
  /** Sharing: a channel to the other tabs, and visibility reported by every tab. */
  shared: boolean;
  store: Outbox | null;
  /** Whether `cid` outlives this page (shared, or claimed with a store): then the watermark is kept. */
  durable: boolean;
  known: Known;
  /** The own tab's hello, as of now. */
  hello(): Extract<ToLeader, { t: 'hello' }>;
  /** A message for the own tab. */
  deliver(msg: FromLeader): void;
  /** A message for the other tabs. */
  post(msg: FromLeader): void;
  /** The ids of the other live tabs (their tab locks). */
  liveTabs(): Promise<string[]>;
  /** Calls `gone` once tab `tab` has released its lock (closed, crashed, frozen). */
  watch(tab: string, signal: AbortSignal, gone: () => void): void;
  /** A storage problem (`storage_failed`), already worded. */
  storageError(message: string): void;
}

interface Route {
  tab: string;
  local: number;
  /** A request restored under its id after a leader change (its ack comes as a plain ack). */
  req: boolean;
}

interface TabState {
  rooms: Set<string>;
  visible: boolean;
}

export const userKey = (cid: string) => `sockline:cid:${cid}:user`;
export const nextKey = (cid: string) => `sockline:cid:${cid}:next`;

export class Leader {
  readonly #host: Host;
  #core: Core | null = null;
  #ready = false;
  #stopped = false;
  #backlog: ToLeader[] = [];
  #hellos = new Set<string>();
  #helloWaiter: (() => void) | null = null;
  #expected: string[] = [];
  readonly #tabs = new Map<string, TabState>();
  readonly #rooms = new Map<string, number>();
  readonly #routes = new Map<number, Route>();
  readonly #byLocal = new Map<string, number>();
  /** (tab, local) of requests in flight through `core.request` (their outcome is its promise). */
  readonly #requests = new Set<string>();
  readonly #settled = new Set<string>();
  /** Sends restored from storage that no live tab has claimed: id → record. */
  readonly #orphans = new Map<number, StoredSend>();
  /** Our own `leave_room` sends for rooms a resumed session kept but no tab wants. */
  readonly #internal = new Set<number>();
  readonly #intents = new Map<string, number>();
  readonly #watching = new Set<string>();
  readonly #abort = new AbortController();
  #desired: boolean;
  #user: string | null;
  #session: string | null;
  #change: StateChange | null;
  #visible: boolean | null = null;
  #saved = 0;
  #firstNext = 1;

  constructor(host: Host) {
    this.#host = host;
    this.#desired = host.known.desired;
    this.#user = local.get(userKey(host.cid)) ?? host.known.user;
    this.#session = host.known.point?.session ?? null;
    this.#change = host.known.change;
  }

  /** Takes over: tells the tabs, gathers their hellos and the stored sends, then starts. */
  async start(): Promise<void> {
    if (!this.#host.shared && !this.#host.store) return this.#begin([]);
    this.#host.post({ t: 'leader', from: this.#host.tab, ...this.#status() });
    const [records] = await Promise.all([this.#load(), this.#waitForHellos()]);
    if (!this.#stopped) this.#begin(records);
  }

  async #load(): Promise<StoredSend[]> {
    const store = this.#host.store;
    if (!store) return [];
    try {
      return await store.load(this.#host.cid);
    } catch (e) {
      this.#host.storageError(`could not read the stored sends: ${toWire(e).message}`);
      return [];
    }
  }

  async #waitForHellos(): Promise<void> {
    if (!this.#host.shared) return;
    try {
      this.#expected = await this.#host.liveTabs();
    } catch {
      this.#expected = [];
    }
    if (this.#expected.every((t) => this.#hellos.has(t))) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, HELLO_WAIT_MS);
      this.#helloWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#helloWaiter = null;
  }

  #begin(records: StoredSend[]): void {
    const { cid, known } = this.#host;
    const stored = Number(local.get(nextKey(cid)) ?? 0) || 0;
    const maxRecord = records.reduce((m, r) => Math.max(m, r.id), 0);
    this.#firstNext = Math.max(1, known.next, stored, maxRecord + 1);
    const core = new Core({
      ...this.#host.options,
      clientId: cid,
      firstSendId: this.#firstNext,
      followPageVisibility: !this.#host.shared,
    } as CoreOptions);
    this.#core = core;
    core.onState((change) => this.#onState(change));
    core.onAny((name, data, seq) => this.#broadcast({ t: 'ev', from: this.#host.tab, name, data, seq, session: this.#session }));
    core.on('ack', (a) => this.#onAck(a));
    core.on('error', (e) => this.#onError(e));
    core.on('resumed', (r) => {
      this.#event('resumed', r);
      this.#leaveStaleRooms();
    });
    core.on('resume_failed', () => this.#event('resume_failed', undefined));
    const point = this.#resumePoint();
    if (point) core.resumeFrom(point.session, point.seq);
    let unrestored: { code: string; message: string } | null = null;
    let left = 0;
    for (const r of records.sort((a, b) => a.id - b.id)) {
      const failure = this.#restore(r.id, r.name, r.json, r.owner);
      if (failure) {
        unrestored = failure;
        left += 1;
        continue;
      }
      this.#orphans.set(r.id, r);
      this.#byLocal.set(`${r.tab}:${r.local}`, r.id);
    }
    if (unrestored) {
      // They stay stored: the next leader (or the next page load) tries again.
      const message = `${left} stored send(s) could not be restored and stay stored: ${unrestored.message}`;
      this.#event('error', undefined, { code: unrestored.code, message });
    }
    this.#ready = true;
    this.#handleNow(this.#host.hello());
    for (const msg of this.#backlog.splice(0)) this.#handleNow(msg);
    this.#updateVisible();
    if (this.#desired) core.connect();
    this.#saveNext();
  }

  /** The session to resume and the highest seq any tab saw in it. */
  #resumePoint(): Point | null {
    const session = this.#session;
    if (!session) return null;
    let seq = this.#host.known.point?.session === session ? this.#host.known.point.seq : 0;
    for (const msg of this.#backlog) {
      if (msg.t === 'hello' && msg.point?.session === session) seq = Math.max(seq, msg.point.seq);
    }
    return { session, seq };
  }

  /** A message from a tab (`direct`: the own tab, whose synchronous send errors are thrown). */
  handle(msg: ToLeader, direct = false): void {
    if (this.#stopped) return;
    if (!this.#ready) {
      this.#backlog.push(msg);
      if (msg.t === 'hello') {
        this.#hellos.add(msg.from);
        if (this.#expected.length && this.#expected.every((t) => this.#hellos.has(t))) this.#helloWaiter?.();
      }
      return;
    }
    this.#handleNow(msg, direct);
  }

  #handleNow(msg: ToLeader, direct = false): void {
    switch (msg.t) {
      case 'hello':
        return this.#register(msg);
      case 'send':
        return this.#accept(msg.from, msg.claim, direct);
      case 'join':
        return this.#join(msg.from, msg.room);
      case 'leave':
        return this.#leave(msg.from, msg.room);
      case 'intent':
        return this.#intent(msg.from, msg.intent);
      case 'vis': {
        const tab = this.#tabs.get(msg.from);
        if (tab) tab.visible = msg.visible;
        return this.#updateVisible();
      }
      case 'stats?':
        return this.#to(msg.from, { t: 'stats', from: this.#host.tab, to: msg.from, stats: { ...this.stats() } });
      case 'bye':
        return this.#drop(msg.from);
    }
  }

  /** Stops (tab closing, frozen or freed): frees the core and tells the tabs where it stood. */
  stop(): { point: Point | null; next: number } {
    const next = this.#core ? this.#core.nextSendId : this.#firstNext;
    if (this.#stopped) return { point: null, next };
    this.#helloWaiter?.();
    this.#stopped = true;
    this.#abort.abort();
    const core = this.#core;
    this.#core = null;
    const point = core?.resumePoint() ?? null;
    core?.free();
    this.#host.post({ t: 'resign', from: this.#host.tab, point, next });
    return { point, next };
  }

  /** The core's counters (zeros until it exists). */
  stats(): CoreStats | null {
    return this.#core?.stats() ?? null;
  }

  get tabs(): number {
    return Math.max(1, this.#tabs.size);
  }

  #status(): Status {
    return {
      cid: this.#host.cid,
      change: this.#change,
      desired: this.#desired,
      rooms: [...this.#rooms.keys()],
      tabs: this.tabs,
      next: this.#core ? this.#core.nextSendId : this.#firstNext,
      user: this.#user,
      session: this.#session,
    };
  }

  // ---- tabs ----

  #register(hello: Extract<ToLeader, { t: 'hello' }>): void {
    const tab = hello.from;
    const before = this.#tabs.get(tab);
    const state: TabState = { rooms: new Set(hello.rooms), visible: hello.visible };
    this.#tabs.set(tab, state);
    for (const room of before?.rooms ?? []) if (!state.rooms.has(room)) this.#unref(room);
    for (const room of state.rooms) if (!before?.rooms.has(room)) this.#ref(room);
    if (tab !== this.#host.tab && !this.#watching.has(tab)) {
      this.#watching.add(tab);
      this.#host.watch(tab, this.#abort.signal, () => {
        this.#watching.delete(tab);
        this.#drop(tab);
      });
    }
    for (const claim of hello.claims) this.#accept(tab, claim, false);
    if (hello.intent) this.#intent(tab, hello.intent);
    this.#updateVisible();
    if (tab !== this.#host.tab) this.#to(tab, { t: 'leader', from: this.#host.tab, to: tab, ...this.#status() });
    this.#roomsChanged();
  }

  #drop(tab: string): void {
    const state = this.#tabs.get(tab);
    if (!state || tab === this.#host.tab) return;
    this.#tabs.delete(tab);
    this.#intents.delete(tab);
    for (const room of state.rooms) this.#unref(room);
    this.#updateVisible();
    this.#roomsChanged();
  }

  #join(tab: string, room: string): void {
    const state = this.#tabs.get(tab);
    if (!state || state.rooms.has(room)) return;
    state.rooms.add(room);
    this.#ref(room);
    this.#roomsChanged();
  }

  #leave(tab: string, room: string): void {
    const state = this.#tabs.get(tab);
    if (!state?.rooms.delete(room)) return;
    this.#unref(room);
    this.#roomsChanged();
  }

  #ref(room: string): void {
    const n = this.#rooms.get(room) ?? 0;
    this.#rooms.set(room, n + 1);
    if (n === 0) this.#core?.join(room);
  }

  #unref(room: string): void {
    const n = this.#rooms.get(room) ?? 0;
    if (n > 1) return void this.#rooms.set(room, n - 1);
    this.#rooms.delete(room);
    if (n === 1) this.#core?.leave(room);
  }

  #roomsChanged(): void {
    this.#saveNext();
    if (this.#host.shared) this.#host.post({ t: 'rooms', from: this.#host.tab, rooms: [...this.#rooms.keys()], tabs: this.tabs });
  }

  /** After a resume: the session kept the rooms of tabs that are gone; leave those. */
  #leaveStaleRooms(): void {
    const core = this.#core;
    if (!core) return;
    for (const room of this.#host.known.rooms.splice(0)) {
      if (this.#rooms.has(room)) continue;
      try {
        this.#internal.add(core.send('leave_room', { room }));
      } catch {
        /* outbox full: the room stays joined until the next new session */
      }
    }
    this.#saveNext();
  }

  #updateVisible(): void {
    if (!this.#host.shared || !this.#core) return;
    const visible = [...this.#tabs.values()].some((t) => t.visible);
    if (visible === this.#visible) return;
    this.#visible = visible;
    this.#core.setVisible(visible);
  }

  #intent(tab: string, intent: Intent): void {
    const core = this.#core;
    if (!core || intent.n <= (this.#intents.get(tab) ?? 0)) return;
    this.#intents.set(tab, intent.n);
    this.#desired = intent.op !== 'disconnect';
    if (intent.op === 'connect') {
      core.connect();
    } else if (intent.op === 'reconnect') {
      core.reconnect();
    } else {
      core.disconnect();
      // Requests restored after a leader change are plain sends to the core: fail them as
      // disconnect() fails requests.
      for (const [id, route] of this.#routes) {
        if (!route.req) continue;
        this.#routes.delete(id);
        const key = `${route.tab}:${route.local}`;
        this.#byLocal.delete(key);
        this.#remember(key);
        this.#settle(route.tab, route.local, false, undefined, {
          code: 'disconnected',
          message: 'disconnect() was called before the ack arrived',
        });
      }
    }
    this.#to(tab, { t: 'ok', from: this.#host.tab, to: tab, n: intent.n });
  }

  // ---- sends ----

  /** Takes a tab's send or request (new, or offered again after a leader change). */
  #accept(tab: string, claim: Claim, direct: boolean): void {
    const core = this.#core;
    if (!core) return;
    const key = `${tab}:${claim.local}`;
    const req = claim.timeoutMs !== undefined;
    const known = claim.id ?? this.#byLocal.get(key);
    if (known !== undefined && this.#requests.has(key)) {
      this.#to(tab, { t: 'acc', from: this.#host.tab, to: tab, local: claim.local, id: known, owner: this.#user });
      return;
    }
    if (known !== undefined) {
      const orphan = this.#orphans.get(known);
      this.#orphans.delete(known);
      const owner = claim.owner ?? orphan?.owner ?? this.#user;
      if (!orphan && !this.#routes.has(known)) {
        const failure = this.#restore(known, claim.name, claim.json, owner);
        if (failure) return this.#settle(tab, claim.local, false, undefined, failure);
        if (!req) this.#persist(known, claim, tab, owner);
      }
      this.#routes.set(known, { tab, local: claim.local, req });
      this.#byLocal.set(key, known);
      this.#to(tab, { t: 'acc', from: this.#host.tab, to: tab, local: claim.local, id: known, owner });
      return this.#saveNext();
    }
    if (this.#settled.has(key)) return; // settled already; its outcome is on its way
    const data: unknown = JSON.parse(claim.json);
    if (req) return this.#request(tab, key, claim, data);
    let id: number;
    try {
      id = core.send(claim.name, data as never);
    } catch (e) {
      if (direct) throw e;
      return this.#settle(tab, claim.local, false, undefined, toWire(e));
    }
    this.#routes.set(id, { tab, local: claim.local, req: false });
    this.#byLocal.set(key, id);
    this.#persist(id, claim, tab, this.#user);
    this.#to(tab, { t: 'acc', from: this.#host.tab, to: tab, local: claim.local, id, owner: this.#user });
    this.#saveNext();
  }

  #request(tab: string, key: string, claim: Claim, data: unknown): void {
    const core = this.#core!;
    const id = core.nextSendId;
    const promise = core.request(claim.name, data as never, { timeoutMs: claim.timeoutMs });
    if (core.nextSendId > id) {
      this.#byLocal.set(key, id);
      this.#requests.add(key);
      this.#to(tab, { t: 'acc', from: this.#host.tab, to: tab, local: claim.local, id, owner: this.#user });
      this.#saveNext();
    }
    const done = (ok: boolean, value: unknown) => {
      // A stopped leader's core rejects with `freed`: the tab offers the request to the next one.
      if (this.#stopped) return;
      this.#byLocal.delete(key);
      this.#requests.delete(key);
      this.#remember(key);
      if (ok) this.#settle(tab, claim.local, true, value);
      else this.#settle(tab, claim.local, false, undefined, toWire(value));
    };
    promise.then(
      (value) => done(true, value),
      (e: unknown) => done(false, e),
    );
  }

  /** Restores send `id` into the core; a failure (e.g. outbox full) is returned. */
  #restore(id: number, name: string, json: string, owner: string | null) {
    try {
      this.#core!.restoreSend(id, name, JSON.parse(json), owner);
      return null;
    } catch (e) {
      const w = toWire(e);
      return w.code === 'invalid_id' ? null : w; // already queued: nothing to do
    }
  }

  #persist(id: number, claim: Claim, tab: string, owner: string | null): void {
    const { store, cid, scope } = this.#host;
    store?.put({ cid, id, scope, name: claim.name, json: claim.json, owner, tab, local: claim.local });
  }

  #onAck(a: SendAck): void {
    this.#host.store?.delete(this.#host.cid, a.id);
    if (this.#internal.delete(a.id)) return;
    const route = this.#routes.get(a.id);
    if (route) {
      this.#routes.delete(a.id);
      const key = `${route.tab}:${route.local}`;
      this.#byLocal.delete(key);
      this.#remember(key);
      return this.#settle(route.tab, route.local, a.ok, a.data, a.error ? toWire(a.error) : undefined);
    }
    const orphan = this.#orphans.get(a.id);
    if (!orphan) return;
    this.#orphans.delete(a.id);
    this.#byLocal.delete(`${orphan.tab}:${orphan.local}`);
    if (!a.ok) {
      const w = toWire(a.error);
      this.#broadcast({
        t: 'err',
        from: this.#host.tab,
        error: { code: w.code, message: `a \`${orphan.name}\` send restored from storage failed: ${w.message}` },
      });
    }
  }

  #onError(e: Error & { id?: number }): void {
    const id = e.id;
    // A failed plain send: its tab reports it with the ack (under the tab's own id).
    if (typeof id === 'number' && (this.#routes.has(id) || this.#orphans.has(id) || this.#internal.has(id))) return;
    this.#broadcast({ t: 'err', from: this.#host.tab, error: toWire(e) });
  }

  #settle(tab: string, local: number, ok: boolean, data?: unknown, error?: { code: string; message: string }): void {
    this.#to(tab, { t: 'done', from: this.#host.tab, to: tab, local, ok, data, error });
  }

  #remember(key: string): void {
    this.#settled.add(key);
    if (this.#settled.size > SETTLED_MEMORY) this.#settled.delete(this.#settled.values().next().value!);
  }

  // ---- what the core reports ----

  #onState(change: StateChange): void {
    const core = this.#core;
    if (!core) return;
    this.#change = change;
    if (change.state === 'connected') {
      this.#session = core.resumePoint()?.session ?? null;
      const user = core.userId ?? null;
      if (user !== this.#user) {
        this.#user = user;
        if (user !== null && this.#host.durable) local.set(userKey(this.#host.cid), user);
      }
    }
    if (change.state !== 'disconnected') this.#desired = true;
    else if (change.reason !== 'paused') this.#desired = false;
    this.#saveNext();
    this.#broadcast({
      t: 'state',
      from: this.#host.tab,
      change,
      desired: this.#desired,
      next: core.nextSendId,
      session: this.#session,
    });
  }

  #event(name: string, data: unknown, error?: { code: string; message: string }): void {
    if (error) this.#broadcast({ t: 'err', from: this.#host.tab, error });
    else this.#broadcast({ t: 'ev', from: this.#host.tab, name, data, seq: null, session: this.#session });
  }

  /**
   * Keeps the send-id watermark above every id the core has used (sends, requests and room
   * joins share the counter), so a later leader of the same client id never reuses one.
   * Where localStorage fails, the tabs are told instead.
   */
  #saveNext(): void {
    const next = this.#core?.nextSendId ?? 0;
    if (next <= this.#saved) return;
    this.#saved = next;
    if (!this.#host.durable) return;
    if (!local.set(nextKey(this.#host.cid), String(next)) && this.#host.shared) {
      this.#host.post({ t: 'next', from: this.#host.tab, next });
    }
  }

  #to(tab: string, msg: FromLeader): void {
    if (tab === this.#host.tab) this.#host.deliver(msg);
    else this.#host.post(msg);
  }

  #broadcast(msg: FromLeader): void {
    this.#host.post(msg);
    this.#host.deliver(msg);
  }
}
