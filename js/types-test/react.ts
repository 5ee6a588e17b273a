// Compile-time tests of every React hook and the provider's props (`make test-types`): payloads
// typed by EventMap, commands typed by ClientEventMap, the shapes `useConnectionState()` and
// `useSockline()` return, `useRoom`, and `initSockline`/`wasm` accepting what init() accepts.
import { createElement } from 'react';
import {
  initSockline,
  SocklineProvider,
  useConnectionState,
  useRoom,
  useSockline,
  useSocklineEvent,
} from './react/index.js';
import type { ConnectionInfo, SocklineApi, SocklineProviderProps } from './react/index.js';

export function Inbox(): null {
  // useSocklineEvent: the handler's payload is the event's type.
  useSocklineEvent('new_notification', (n) => {
    const title: string | undefined = n.title;
    return title;
  });
  useSocklineEvent('unread_count_update', ({ count }) => count.toFixed());
  // @ts-expect-error: a misspelt event name is not in EventMap
  useSocklineEvent('new_notifcation', () => {});
  // @ts-expect-error: `typing` is a boolean, not a string
  useSocklineEvent('typing_update', (t) => t.typing.toUpperCase());

  // useSockline: send returns the id its ack carries (also before init), request a promise.
  const api: SocklineApi = useSockline();
  const id: number = api.send('message', { chat_id: '7', text: 'hi' });
  // @ts-expect-error: the payload of a catalogue client event is checked
  api.send('message', { chat_id: '7', txt: 'hi' });
  const reply: Promise<{ count: number }> = api.request<{ count: number }>('get_unread_count', {});
  api.join('chat:7');
  api.leave('chat:7');
  api.reconnect();
  const connected: boolean = api.isConnected;

  // useConnectionState: every transition says why; isLeader for tab sharing.
  const info: ConnectionInfo = useConnectionState();
  const why: string = info.reason + info.message;
  const leads: boolean = info.isLeader;
  // @ts-expect-error: not a state
  const bad: ConnectionInfo['state'] = 'online';

  // useRoom: a room name, or nothing.
  useRoom('chat:7');
  useRoom(null);
  // @ts-expect-error: a room is a string
  useRoom(7);

  void [id, reply, connected, why, leads, bad];
  return null;
}

// The provider: options as for `new SocklineClient`, and where the WASM comes from.
createElement(SocklineProvider, { options: { url: 'wss://x/ws', token: 't' }, wasm: '/sockline_bg.wasm' });
createElement(SocklineProvider, {
  options: { url: 'wss://x/ws', getToken: async () => 't', maxRetries: 3 } as never,
  wasm: fetch('/sockline_bg.wasm'),
});
createElement(SocklineProvider, { options: { url: 'wss://x/ws', token: 't' }, wasm: new Uint8Array(8) });
// @ts-expect-error: `url` is required
const noUrl: SocklineProviderProps = { options: { token: 't' } };
// @ts-expect-error: `wasm` is a source, not null (WebAssembly.Module is an empty interface,
// so any non-null value type-checks as one: only null/undefined-ish mistakes are caught)
const badWasm: SocklineProviderProps = { options: { url: 'wss://x/ws', token: 't' }, wasm: null };
void [noUrl, badWasm];

void initSockline();
void initSockline(new URL('https://cdn.example/sockline_bg.wasm'));
// @ts-expect-error: not something init() can load
void initSockline(null);
