// Durable state: the outbox in IndexedDB (every unacked plain send, until its ack) and the few
// values kept in localStorage (the group's client id, the send-id watermark, the last user).
// Every failure is reported through `onError` (code `storage_failed`), never swallowed.

/** One unacked plain send. Keyed by (cid, id). */
export interface StoredSend {
  cid: string;
  id: number;
  /** `key` + url of the client that made it (a tab without sharing claims queues by scope). */
  scope: string;
  name: string;
  json: string;
  /** The user the client last authenticated as when it was sent (null: never authenticated). */
  owner: string | null;
  /** The tab and its local id, so a tab that offers the same send again gets the same id. */
  tab: string;
  local: number;
}

const DB = 'sockline';
const STORE = 'outbox';

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Whether this realm has IndexedDB at all. */
export function hasIndexedDb(): boolean {
  try {
    return typeof indexedDB !== 'undefined' && indexedDB !== null;
  } catch {
    return false; // some sandboxed frames throw on access
  }
}

/** The `outbox` store: writes are batched into one transaction per task. */
export class Outbox {
  #db: IDBDatabase;
  #ops: Array<[StoredSend | null, [string, number]]> = [];
  #onError: (message: string) => void;

  private constructor(db: IDBDatabase, onError: (message: string) => void) {
    this.#db = db;
    this.#onError = onError;
  }

  /** Opens (creating on first use) the database; rejects with the browser's reason. */
  static async open(onError: (message: string) => void): Promise<Outbox> {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: ['cid', 'id'] });
    const blocked = new Promise<never>((_, reject) => {
      req.onblocked = () => reject(new Error('the database is blocked by another tab'));
    });
    const db = await Promise.race([request(req), blocked]);
    // Another tab upgrading later: let it.
    db.onversionchange = () => db.close();
    return new Outbox(db, onError);
  }

  /** Every stored send of `cid`, in id order. */
  async load(cid: string): Promise<StoredSend[]> {
    const range = IDBKeyRange.bound([cid, 0], [cid, Number.MAX_SAFE_INTEGER]);
    const tx = this.#db.transaction(STORE, 'readonly');
    return (await request(tx.objectStore(STORE).getAll(range))) as StoredSend[];
  }

  /** The client ids that have stored sends for `scope`. */
  async cids(scope: string): Promise<string[]> {
    const tx = this.#db.transaction(STORE, 'readonly');
    const all = (await request(tx.objectStore(STORE).getAll())) as StoredSend[];
    return [...new Set(all.filter((r) => r.scope === scope).map((r) => r.cid))];
  }

  put(record: StoredSend): void {
    this.#queue(record, [record.cid, record.id]);
  }

  delete(cid: string, id: number): void {
    this.#queue(null, [cid, id]);
  }

  close(): void {
    this.#flush();
    this.#db.close();
  }

  #queue(record: StoredSend | null, key: [string, number]): void {
    if (this.#ops.push([record, key]) === 1) queueMicrotask(() => this.#flush());
  }

  /**
   * One readwrite transaction for everything queued. IndexedDB runs readwrite transactions on
   * a store in the order they were created, so a delete always lands after its put, and a
   * new leader's read (created later, in another tab) sees both.
   */
  #flush(): void {
    const ops = this.#ops.splice(0);
    if (ops.length === 0) return;
    try {
      const tx = this.#db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      for (const [record, key] of ops) {
        if (record) store.put(record);
        else store.delete(key);
      }
      const puts = ops.filter(([r]) => r).length;
      // A failed request aborts the transaction (a quota error aborts it at commit): one report.
      tx.onabort = () =>
        this.#onError(`could not store ${puts} send(s) in IndexedDB: ${tx.error?.message ?? 'transaction aborted'}`);
    } catch (e) {
      this.#onError(`could not write to IndexedDB: ${(e as Error)?.message ?? String(e)}`);
    }
  }
}

/** localStorage, where it exists and works (private modes may throw on every call). */
export const local = {
  get(key: string): string | null {
    try {
      return globalThis.localStorage?.getItem(key) ?? null;
    } catch {
      return null;
    }
  },
  /** Whether the value was stored. */
  set(key: string, value: string): boolean {
    try {
      if (!globalThis.localStorage) return false;
      globalThis.localStorage.setItem(key, value);
      return true;
    } catch {
      return false;
    }
  },
};

export { randomId } from '../core/util.js';
