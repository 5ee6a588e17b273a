// A tab's own listeners (`on`, `onState`): each gets every event once, and what a listener
// throws becomes an `error` event (or, thrown by an `error` listener, a console error) instead of
// stopping the others, as the wasm client does.
import type { StateChange } from '../sockline.js';
import { sockError, toWire } from './wire.js';

type Listener = (data: never) => void;

export class Emitter {
  readonly #named = new Map<string, Set<Listener>>();
  readonly #state = new Set<(change: StateChange) => void>();

  /** Adds a listener for `name`; returns the function that removes it. */
  on(name: string, listener: (data: never) => void): () => void {
    let set = this.#named.get(name);
    if (!set) this.#named.set(name, (set = new Set()));
    const entry: Listener = (data) => listener(data); // the same function twice counts twice
    set.add(entry);
    return () => void set.delete(entry);
  }

  onState(listener: (change: StateChange) => void): () => void {
    const entry = (change: StateChange) => listener(change);
    this.#state.add(entry);
    return () => void this.#state.delete(entry);
  }

  emit(name: string, data: unknown): void {
    const set = this.#named.get(name);
    if (!set?.size) {
      if (name === 'error') console.warn('[sockline]', data); // never silent
      return;
    }
    for (const f of [...set]) this.#call(f as (d: unknown) => void, data, name);
  }

  state(change: StateChange): void {
    for (const f of [...this.#state]) this.#call(f, change, 'state');
  }

  /** How many `on` and `onState` listeners (for `stats().debug`). */
  get counts(): { listeners: number; stateListeners: number } {
    let listeners = 0;
    for (const set of this.#named.values()) listeners += set.size;
    return { listeners, stateListeners: this.#state.size };
  }

  clear(): void {
    this.#named.clear();
    this.#state.clear();
  }

  #call<T>(f: (d: T) => void, data: T, name: string): void {
    try {
      f(data);
    } catch (thrown) {
      const err = sockError('listener_threw', `a \`${name}\` listener threw: ${toWire(thrown).message}`, { cause: thrown });
      if (name === 'error') console.error('[sockline]', err);
      else this.emit('error', err);
    }
  }
}
