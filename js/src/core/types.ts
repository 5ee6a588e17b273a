// The TypeScript surface of the wasm core's client (core/client.ts): option, state and payload
// types, and the `EventMap` that types `on()`. The tab-sharing client (../client.ts) extends
// them in ../index.ts.
/** The five connection states. */
export type ConnectionState =
  | 'disconnected'
  | 'connecting'
  | 'authenticating'
  | 'connected'
  | 'reconnecting';

/** Why a client is `disconnected`. */
export type DisconnectReason =
  | 'not_started'
  | 'requested'
  | 'auth_rejected'
  | 'refused'
  | 'retries_exhausted'
  | 'paused';

/** Why a link was lost (the `reason` of `reconnecting`). */
export type LinkError =
  | 'socket_closed'
  | 'socket_error'
  | 'connect_timeout'
  | 'auth_timeout'
  | 'heartbeat_timeout'
  | 'token_fetch_failed'
  | 'offline'
  | 'token_expired'
  | 'seq_gap';

/** Why the state changed: the same codes on every face (Rust: `Cause::code()`). */
export type StateCause =
  | 'connect'
  | 'reconnect'
  | 'retry'
  | 'online'
  | 'visible'
  | 'socket_open'
  | 'authenticated'
  | LinkError
  | DisconnectReason;

/** What `onState` listeners get. */
export interface StateChange {
  state: ConnectionState;
  /** 0 for a fresh start, n while making (or waiting for) retry n. */
  attempt: number;
  /**
   * Why, for every transition: what made it connect (`connect`, `retry`, `online`, `visible`),
   * why it is `reconnecting` (a `LinkError`), why it is `disconnected` (a `DisconnectReason`).
   */
  reason: StateCause;
  /** Milliseconds until the next retry while `reconnecting` (null while offline). */
  nextRetryMs: number | null;
  /** A human-readable explanation of `reason`. */
  message: string;
}

/** What `ack` listeners get: the outcome of a plain `send()` (a request's goes to its promise). */
export interface SendAck {
  id: number;
  ok: boolean;
  /** The ack's data, when `ok`. */
  data?: unknown;
  /** Why it failed, when not `ok` (also emitted as an `error` event). */
  error?: SocklineError;
}

/** Options of `new SocklineClient(options)`. One of `token` and `getToken` is required. */
export interface ClientOptions {
  /** `ws://` or `wss://` URL of the server's socket endpoint. */
  url: string;
  /** A fixed token. */
  token?: string;
  /** Called before every connection attempt (tokens expire). */
  getToken?: () => Promise<string> | string;
  /**
   * Reconnect delays: min(initialMs * factor^(n-1), maxMs), equal jitter; default 1 s, 30 s, 2,
   * 5 retries. `maxRetries: Infinity` never gives up.
   */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number; maxRetries?: number; jitter?: boolean };
  /** Close the socket while the tab is hidden and reconnect when visible (default true). */
  pauseWhenHidden?: boolean;
  /** How long the tab may stay hidden before pausing (default 0). */
  hiddenGraceMs?: number;
  /** Silence allowed beyond the server's ping interval (default 10000). */
  heartbeatGraceMs?: number;
  /** Bounds of the send queue (default 1000 messages, 1 MiB). */
  outbox?: { maxMessages?: number; maxBytes?: number };
  /**
   * The client id sent in `auth` (16–64 of `[A-Za-z0-9_-]`); default: 16 random bytes from
   * `crypto.getRandomValues`. The server dedupes sends per (user, client id).
   */
  clientId?: string;
  /**
   * The WebSocket constructor to use where there is no global one (Node before 22: pass the
   * `ws` package's default export). Default: `globalThis.WebSocket`.
   */
  WebSocket?: new (url: string) => unknown;
  /** Log every state transition to the console with a `[sockline]` prefix. */
  debug?: boolean;
}

/**
 * Every error the client throws, rejects with or emits: a real `Error` with a stable `code`
 * (`invalid_options`, `invalid_argument`, `freed`, `outbox_full`, `too_large`,
 * `empty_event_name`, `bad_payload`, `timeout`, `disconnected`, `listener_threw`, `bad_frame`,
 * `binary_frame`, or the server's code such as `forbidden`).
 */
export interface SocklineError extends Error {
  code: string;
  /** The send id, for ack errors. */
  id?: number;
  /** What a listener threw, for `listener_threw`. */
  cause?: unknown;
}

export interface NewNotification { id: string; title?: string; body?: string }
export interface UnreadCountUpdate { count: number }
export interface NotificationRead { id: string }
export interface NotificationDeleted { id: string }
export interface NewMessage { chat_id: string; from: string; text: string; id: string; ts?: string }
export interface MessageDelivered { chat_id: string; id: string }
export interface MessageStatusUpdate { chat_id: string; id: string; status: 'delivered' | 'read' | string; user?: string }
export interface TypingUpdate { chat_id: string; user: string; typing: boolean }
export interface UserJoined { room: string; user: string }
export interface UserLeft { room: string; user: string }
export interface ConversationUpdate { chat_id: string; title?: string | null; last_message?: string | null }
export interface Presence { user: string; online: boolean }

/**
 * What `on(name, listener)` accepts and what each listener gets. Payloads arrive as the server
 * sent them (plain objects). Apps add their own events by augmentation:
 * `declare module 'sockline' { interface EventMap { order_shipped: { order_id: string } } }`.
 */
export interface EventMap {
  new_notification: NewNotification;
  unread_count_update: UnreadCountUpdate;
  notification_read: NotificationRead;
  notification_deleted: NotificationDeleted;
  new_message: NewMessage;
  message_delivered: MessageDelivered;
  message_status_update: MessageStatusUpdate;
  typing_update: TypingUpdate;
  user_joined: UserJoined;
  user_left: UserLeft;
  conversation_update: ConversationUpdate;
  presence: Presence;
  /**
   * A problem that did not stop the client: a bad or binary frame (`bad_frame`,
   * `binary_frame`), a server error, a failed plain send (with `id`), a listener threw, …
   */
  error: SocklineError;
  /** The outcome of a plain `send()`. */
  ack: SendAck;
  /** The server resumed the session and replays `missed` events next. */
  resumed: { missed: number };
  /** The session could not be resumed: events may have been missed, refetch. */
  resume_failed: undefined;
}

/** Payloads of the client events the reference server knows; other names take any JSON. */
export interface ClientEventMap {
  join_room: { room: string };
  leave_room: { room: string };
  message: { chat_id: string; text: string };
  typing_start: { chat_id: string };
  typing_stop: { chat_id: string };
  mark_notification_read: { id: string };
  delete_notification: { id: string };
  get_unread_count: Record<string, never>;
}

/** The payload type of client event `K`. */
export type ClientPayload<K extends string> = K extends keyof ClientEventMap ? ClientEventMap[K] : unknown;

/** `stats()`. */
export interface ClientStats {
  state: ConnectionState;
  timeInStateMs: number;
  attempt: number;
  reconnects: number;
  lastRttMs: number | null;
  outboxDepth: number;
  outboxBytes: number;
  framesIn: number;
  framesOut: number;
  duplicatesDropped: number;
  rooms: number;
  /** What the driver holds right now (for leak checks). */
  debug: {
    closures: number;
    sockets: number;
    pageListeners: number;
    listeners: number;
    stateListeners: number;
    pendingRequests: number;
    tokenFetches: number;
    timerArmed: boolean;
  };
}
