'use server';
// A server function: the client calls it (a POST to this app) before every connection attempt,
// as `getToken`. A real app mints a JWT here for the signed-in user (claims: sub = user id, exp),
// signed with the secret the sockline server checks, and takes the user from its session rather
// than from an argument; this example asks the reference server's dev route
// (`sockline-server --dev`) for one.
import { socklineServer } from './config';

export async function mintToken(user: string): Promise<string> {
  const res = await fetch(`${socklineServer()}/dev/token?user=${encodeURIComponent(user)}`, { cache: 'no-store' });
  if (!res.ok) throw new Error(`the token route answered ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}
