import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { SocklineProvider } from 'sockline/react';
import { App } from './App.jsx';
import { Picker } from './Picker.jsx';
import './style.css';

const params = new URLSearchParams(location.search);
const user = params.get('user')?.trim();

// The page is served by sockline-server (`--static-dir`), so the socket and the dev routes are
// on the same origin.
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

// Called before every connection attempt: a restarted `--dev` server has a new secret, and a
// real app's tokens expire. A real app would ask its own backend for the token.
async function getToken() {
  const res = await fetch(`/dev/token?user=${encodeURIComponent(user)}`);
  if (!res.ok) throw new Error(`/dev/token: HTTP ${res.status}`);
  return (await res.json()).token;
}

// Lets the e2e tests check that StrictMode's double mount is really exercised (development only).
document.documentElement.dataset.reactBuild = import.meta.env.DEV ? 'development' : 'production';

// `key: user`: tabs of one user share one connection; another user's tab (the demo lets you open
// `?user=bob` beside `?user=alice` on one origin) gets its own.
const options = { url, getToken, key: user, debug: params.has('debug') };

createRoot(document.getElementById('root')).render(
  <StrictMode>
    {user ? (
      <SocklineProvider options={options}>
        <App user={user} />
      </SocklineProvider>
    ) : (
      <Picker />
    )}
  </StrictMode>,
);
