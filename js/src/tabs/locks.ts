// The Web Locks a tab uses: held for as long as the tab wants them, queued for, tried once, or
// watched (a lock another tab holds is granted to us when that tab lets go of it or dies).

export const hasLocks = (): boolean => typeof navigator !== 'undefined' && !!navigator.locks;

/**
 * Requests `name` and, once granted, holds it until the `release` handed to `onHeld` is called.
 * `still()` is asked at the grant: false lets the lock go at once. With `ifAvailable`, resolves
 * false when another holder has it; with `signal`, a request still queued is dropped on abort.
 */
export function hold(
  name: string,
  onHeld: (release: () => void) => void,
  options: { signal?: AbortSignal; ifAvailable?: boolean; still?: () => boolean } = {},
): Promise<boolean> {
  const { still = () => true, ...request } = options;
  return new Promise((resolve) => {
    navigator.locks
      .request(name, request, (lock) => {
        if (!lock || !still()) return resolve(false);
        resolve(true);
        return new Promise<void>((release) => onHeld(release));
      })
      .catch(() => resolve(false)); // aborted
  });
}

/** Calls `gone` once whoever holds `name` lets go of it (closed, crashed, frozen, freed). */
export function watch(name: string, signal: AbortSignal, gone: () => void): void {
  navigator.locks.request(name, { signal }, () => gone()).catch(() => {});
}

/** The names, without `prefix`, of the held locks that start with it. */
export async function heldWith(prefix: string): Promise<string[]> {
  const { held = [] } = await navigator.locks.query();
  return held.map((l) => l.name ?? '').filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
}
