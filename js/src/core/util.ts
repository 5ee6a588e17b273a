// Small helpers of the driver, shared with the tab layer: errors with a stable `code`, describing
// what was thrown, random ids.

/** A real `Error` named `SocklineError` with a stable `code` (and `id`, … when given). */
export function sockError(code: string, message: string, extra?: Record<string, unknown>): Error {
  const e = new Error(message) as Error & Record<string, unknown>;
  e.name = 'SocklineError';
  e.code = code;
  if (extra) Object.assign(e, extra);
  return e;
}

/** A thrown value in words: an `Error`'s message, a string, or its type. */
export const describe = (e: unknown): string =>
  e instanceof Error ? e.message : typeof e === 'string' ? e : `${typeof e} thrown`;

/**
 * 22 characters of base64url from 16 random bytes (`crypto.getRandomValues`, or `Math.random`
 * where there is no Web Crypto: ids only need to be unique): a valid client id.
 */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  if (typeof crypto === 'object' && crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.random() * 256;
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
