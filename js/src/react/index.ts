'use client';
// React bindings for sockline: `import { SocklineProvider, useSockline } from 'sockline/react'`.
//
// One `SocklineClient` per `<SocklineProvider>`. The WASM module is initialised once per page
// (lazily, by the first provider, in an effect: nothing runs at import time or during a server
// render); until it is ready the provider renders its children with `client: null` and state
// `disconnected` (or `fallback`, when given). Rooms joined and events sent before that are applied
// as soon as the client exists; a request made before that waits for it (and rejects with code
// `init_failed` if the WASM cannot be loaded).
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
} from 'react';
import type { ReactElement, ReactNode } from 'react';
import init, { SocklineClient } from '../index.js';
import type { InitInput } from '../sockline.js';
import type {
  ClientOptions,
  ClientPayload,
  ConnectionState,
  DisconnectReason,
  EventMap,
  StateCause,
  StateChange,
} from '../index.js';

export type { ClientOptions, ConnectionState, DisconnectReason, EventMap, StateCause, StateChange };

/** What `useConnectionState()` returns. */
export interface ConnectionInfo {
  state: ConnectionState;
  /** 0 for a fresh start, n while making (or waiting for) retry n. */
  attempt: number;
  /** Why the last transition happened (a `StateCause` code, for every state). */
  reason: StateCause;
  /** A human-readable explanation of `reason`. */
  message: string;
  /** Milliseconds until the next retry, as of the last transition (null unless reconnecting online). */
  nextRetryMs: number | null;
  /** Whether this tab runs the connection that the app's tabs share (see `shareAcrossTabs`). */
  isLeader: boolean;
}

/** What `useSockline()` returns. */
export interface SocklineApi {
  /** The client, or `null` until the WASM module is initialised (and after unmount). */
  client: SocklineClient | null;
  state: ConnectionState;
  isConnected: boolean;
  /**
   * Queues an event (see `SocklineClient.send`) and returns its id, which its `ack` event
   * carries. Before the client exists the event waits in the provider and goes out first, in
   * order, when the client is created; the id returned is the one it will have (a client numbers
   * its sends 1, 2, 3, … and the provider is its only sender until then).
   */
  send<K extends string>(name: K, data?: ClientPayload<K>): number;
  /**
   * `SocklineClient.request`, waiting for the client to exist first; rejects with code
   * `init_failed` if the WASM module cannot be initialised.
   */
  request<T = unknown, K extends string = string>(
    name: K,
    data?: ClientPayload<K>,
    options?: { timeoutMs?: number },
  ): Promise<T>;
  /** Joins `room`; reference-counted, so two components may join the same room. */
  join(room: string): void;
  /** Undoes one `join(room)`; the client leaves when the last joiner leaves. */
  leave(room: string): void;
  /**
   * `SocklineClient.reconnect()`: a new socket now with the backoff reset; queued sends and
   * pending requests are kept (nothing is rejected).
   */
  reconnect(): void;
}

export interface SocklineProviderProps {
  /**
   * `new SocklineClient(options)`. A change to any option but the functions (`url`, `key`,
   * `token`, `backoff`, …) frees the client and creates a new one with the new options; the
   * functions (`getToken`, `WebSocket`) are read when called, so passing a new function does not
   * recreate the client (the latest `getToken` is the one called).
   */
  options: ClientOptions;
  /**
   * Where the WASM comes from, for bundlers and servers that cannot resolve
   * `new URL('sockline_bg.wasm', import.meta.url)`: a URL, a `Response` (or a promise of one),
   * the bytes, or a compiled `WebAssembly.Module`. Only the first provider's is used (once per page).
   */
  wasm?: InitInput | Promise<InitInput>;
  /** Call `connect()` once the client is created (default true). */
  autoConnect?: boolean;
  /** Rendered instead of the children until the client exists (default: the children). */
  fallback?: ReactNode;
  children?: ReactNode;
}

let initPromise: Promise<unknown> | null = null;

/** `c.send`, keeping the count of ids handed out (the client numbers sends 1, 2, 3, …). */
function send(pending: { sent: number }, c: SocklineClient, name: string, data: unknown): number {
  const id = c.send(name, data as never);
  pending.sent = id;
  return id;
}

/**
 * Initialises the WASM module once per page; later calls return the same promise. `wasm` says
 * where the module comes from (a URL, a `Response`, bytes or a `WebAssembly.Module`); by default
 * it is fetched from next to the package's JS.
 */
export function initSockline(wasm?: InitInput | Promise<InitInput>): Promise<unknown> {
  if (!initPromise) {
    const input = wasm === undefined ? undefined : { module_or_path: wasm };
    initPromise = init(input).catch((e: unknown) => {
      initPromise = null; // let a later provider try again
      throw e;
    });
  }
  return initPromise;
}

/** A key of the options without their functions: a change to it recreates the client. */
function optionsKey(options: ClientOptions): string {
  return JSON.stringify(options, (_key, value: unknown) =>
    typeof value === 'function' ? undefined : value,
  );
}

/** The error a request made before the client existed gets when the WASM cannot load. */
function initFailed(cause: unknown): Error {
  const err = new Error(
    `sockline/react: the WASM module could not be initialised: ${String((cause as Error)?.message ?? cause)}`,
  ) as Error & { code: string; cause: unknown };
  err.name = 'SocklineError';
  err.code = 'init_failed';
  err.cause = cause;
  return err;
}

const INITIAL: ConnectionInfo = {
  state: 'disconnected',
  attempt: 0,
  reason: 'not_started',
  message: 'not started',
  nextRetryMs: null,
  isLeader: false,
};

interface Controller {
  client: SocklineClient | null;
  send: SocklineApi['send'];
  request: SocklineApi['request'];
  join: SocklineApi['join'];
  leave: SocklineApi['leave'];
  reconnect: SocklineApi['reconnect'];
}

const ControllerContext = createContext<Controller | null>(null);
const StateContext = createContext<ConnectionInfo>(INITIAL);

function missingProvider(): never {
  throw new Error('sockline/react: this hook must be used inside <SocklineProvider>');
}

/** Owns one client for its subtree. Safe under StrictMode: one socket, freed on unmount. */
export function SocklineProvider({
  options,
  autoConnect = true,
  fallback,
  wasm,
  children,
}: SocklineProviderProps): ReactElement {
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const key = optionsKey(options);
  const [client, setClient] = useState<SocklineClient | null>(null);
  const [info, setInfo] = useState<ConnectionInfo>(INITIAL);

  // Survives StrictMode's simulated unmount/remount, so work queued by children's effects
  // (which run before this provider's effect) is not lost.
  const pending = useRef({
    rooms: new Map<string, number>(),
    sends: [] as Array<[number, string, unknown]>,
    waiters: [] as Array<[(c: SocklineClient) => void, (e: unknown) => void]>,
    client: null as SocklineClient | null,
    /** Ids handed out by `send()` (a new client numbers its sends from 1 again). */
    sent: 0,
  }).current;

  useEffect(() => {
    let cancelled = false;
    let created: SocklineClient | null = null;
    let offState: (() => void) | null = null;
    let offLeader: (() => void) | null = null;
    initSockline(wasm).then(
      () => {
        // Under StrictMode the first effect is cleaned up before this runs: no client for it.
        if (cancelled) return;
        const opts: ClientOptions = { ...optionsRef.current };
        if (opts.getToken) opts.getToken = () => optionsRef.current.getToken!();
        const c = new SocklineClient(opts);
        created = c;
        pending.sent = 0;
        offState = c.onState((s: StateChange) =>
          setInfo({
            state: s.state,
            attempt: s.attempt,
            reason: s.reason,
            message: s.message,
            nextRetryMs: s.nextRetryMs,
            isLeader: c.isLeader,
          }),
        );
        offLeader = c.on('leader_changed', ({ isLeader }) => setInfo((i) => ({ ...i, isLeader })));
        for (const room of pending.rooms.keys()) c.join(room);
        for (const [promised, name, data] of pending.sends.splice(0)) {
          const id = send(pending, c, name, data);
          if (id !== promised) {
            console.error(`sockline/react: a send queued before init got id ${id}, not ${promised}`);
          }
        }
        pending.client = c;
        for (const [resolve] of pending.waiters.splice(0)) resolve(c);
        setInfo({ ...INITIAL, state: c.state as ConnectionState, isLeader: c.isLeader });
        setClient(c);
        if (autoConnect) c.connect();
      },
      (e: unknown) => {
        if (cancelled) return;
        console.error('sockline/react: WASM init failed', e);
        const err = initFailed(e);
        for (const [, reject] of pending.waiters.splice(0)) reject(err);
      },
    );
    return () => {
      cancelled = true;
      if (created) {
        pending.client = null;
        offState?.();
        offLeader?.();
        created.free();
        setClient(null);
        setInfo(INITIAL);
      }
    };
    // Created once per mount and per options key; functions are read through optionsRef.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  // The commands do not change with the client, so effects that depend on them (`useRoom`) do
  // not leave and re-join when the client appears.
  const commands = useMemo<Omit<Controller, 'client'>>(
    () => ({
      send(name, data) {
        const c = pending.client;
        if (c) return send(pending, c, name, data);
        pending.sent += 1;
        pending.sends.push([pending.sent, name, data]);
        return pending.sent;
      },
      request(name, data, opts) {
        const c = pending.client;
        if (c) return c.request(name, data, opts);
        return new Promise<SocklineClient>((resolve, reject) =>
          pending.waiters.push([resolve, reject]),
        ).then((c2) => c2.request(name, data, opts));
      },
      join(room) {
        const n = pending.rooms.get(room) ?? 0;
        pending.rooms.set(room, n + 1);
        if (n === 0) pending.client?.join(room);
      },
      leave(room) {
        const n = pending.rooms.get(room) ?? 0;
        if (n <= 1) {
          pending.rooms.delete(room);
          if (n === 1) pending.client?.leave(room);
        } else {
          pending.rooms.set(room, n - 1);
        }
      },
      reconnect() {
        pending.client?.reconnect();
      },
    }),
    [pending],
  );
  const controller = useMemo<Controller>(() => ({ client, ...commands }), [client, commands]);

  const body = client === null && fallback !== undefined ? fallback : children;
  return createElement(
    ControllerContext.Provider,
    { value: controller },
    createElement(StateContext.Provider, { value: info }, body),
  );
}

/** The client and its commands, plus the current state. */
export function useSockline(): SocklineApi {
  const controller = useContext(ControllerContext) ?? missingProvider();
  const { state } = useContext(StateContext);
  return useMemo(
    () => ({
      client: controller.client,
      state,
      isConnected: state === 'connected',
      send: controller.send,
      request: controller.request,
      join: controller.join,
      leave: controller.leave,
      reconnect: controller.reconnect,
    }),
    [controller, state],
  );
}

/** `{ state, attempt, reason, message, nextRetryMs, isLeader }`, updated on every transition and leader change. */
export function useConnectionState(): ConnectionInfo {
  if (useContext(ControllerContext) === null) missingProvider();
  return useContext(StateContext);
}

/**
 * Listens for `name` while mounted. The latest `handler` is always the one called; changing it
 * does not resubscribe (only a new `name` or a new client does).
 */
export function useSocklineEvent<K extends keyof EventMap>(
  name: K,
  handler: (data: EventMap[K]) => void,
): void {
  const { client } = useContext(ControllerContext) ?? missingProvider();
  const handlerRef = useRef(handler);
  useLayoutEffect(() => {
    handlerRef.current = handler;
  });
  useEffect(() => {
    if (!client) return;
    const off = client.on(name, (data: EventMap[K]) => handlerRef.current(data));
    return () => {
      // The provider may have freed the client first (it unmounts before its children).
      try {
        off();
      } catch {
        /* already released with the client */
      }
    };
  }, [client, name]);
}

/**
 * Joins `room` while mounted (and while `room` stays the same); reference-counted with every
 * other `join`/`useRoom` of the provider, so the client leaves only when the last one does.
 * `null` or `undefined` joins nothing.
 */
export function useRoom(room: string | null | undefined): void {
  const { join, leave } = useContext(ControllerContext) ?? missingProvider();
  useEffect(() => {
    if (!room) return;
    join(room);
    return () => leave(room);
  }, [room, join, leave]);
}
