// Compile-time tests of what tab sharing adds to the surface: the options, `stats().isLeader`,
// the `leader_changed` event, and `isLeader` in React's `useConnectionState()`.
import { SocklineClient } from './index.js';
import type { ClientOptions, ClientStats, LeaderChange } from './index.js';
import { useConnectionState } from './react/index.js';
import type { ConnectionInfo } from './react/index.js';

const options: ClientOptions = { url: 'wss://x/ws', token: 't', shareAcrossTabs: false, key: 'app-2', persist: true };
const client = new SocklineClient(options);
// @ts-expect-error: a misspelt option is not in ClientOptions
new SocklineClient({ url: 'wss://x/ws', token: 't', shareAcrosTabs: true });
// @ts-expect-error: `persist` is a boolean
new SocklineClient({ url: 'wss://x/ws', token: 't', persist: 'yes' });

const stats: ClientStats = client.stats();
const leads: boolean = stats.isLeader && client.isLeader;
const leader: string | null = stats.leader;
const tabs: number = stats.tabs;
// @ts-expect-error: `isLeader` is a boolean, not a tab id
const wrong: string = stats.isLeader;

client.on('leader_changed', (l: LeaderChange) => (l.isLeader ? l.leader : null));
// @ts-expect-error: `leader_changed` payloads have no `state`
client.on('leader_changed', (l) => l.state);

// The wrapper keeps the wasm client's API.
const id: number = client.send('message', { chat_id: '7', text: 'hi' });
const reply: Promise<{ count: number }> = client.request<{ count: number }>('get_unread_count', {});
client.join('chat:7');
client.leave('chat:7');
client.reconnect();
client.onState(({ state }) => state === 'connected');
const cid: string = client.clientId;
client.free();

export function Badge(): boolean {
  const info: ConnectionInfo = useConnectionState();
  const isLeader: boolean = info.isLeader;
  return isLeader;
}

export { leads, leader, tabs, wrong, id, reply, cid };
