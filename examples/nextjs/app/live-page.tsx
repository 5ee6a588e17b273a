// The page both routes render (a server component): it renders sockline/react's provider itself
// (the package's React entry is a client module, so a server component may import it) and hands
// it only what crosses to the browser: the socket URL, a server function as `getToken` and, on
// /public-wasm, where to fetch the WASM from. The client components inside (live.tsx) render on
// the server too, with state `disconnected`; the WASM loads and the socket opens only in the
// browser, in the provider's effect.
import { connection } from 'next/server';
import { SocklineProvider } from 'sockline/react';
import { Feed, Status } from './live';
import { socklineServer } from './config';
import { mintToken } from './token';

export async function LivePage({ user, wasm }: { user: string; wasm?: string }) {
  await connection(); // rendered per request, so SOCKLINE_URL is read at run time
  const url = `${socklineServer().replace(/^http/, 'ws')}/ws`;
  return (
    <main>
      <h1>sockline + Next.js</h1>
      <p>
        Signed in as <b id="user">{user}</b>; the socket goes to <code>{url}</code>.
      </p>
      <SocklineProvider wasm={wasm} options={{ url, getToken: mintToken.bind(null, user), key: user }}>
        <Status />
        <Feed />
      </SocklineProvider>
    </main>
  );
}
