// Compile-time tests of the package's TypeScript surface (`make test-types`, tsc --noEmit).
// Every `@ts-expect-error` line must fail to type-check: if one compiles, tsc reports the unused
// directive and the test fails.
import { SocklineClient } from './index.js';
import type { ConnectionState, SendAck, StateCause, StateChange } from './index.js';

declare const client: SocklineClient;

// A catalogue event is typed by EventMap.
client.on('new_notification', (n) => {
  const title: string | undefined = n.title;
  // @ts-expect-error: a misspelt field does not exist on NewNotification
  n.titel;
  return title;
});
client.on('unread_count_update', (u) => u.count.toFixed());
client.on('typing_update', (t) => (t.typing ? t.user : t.chat_id));

// @ts-expect-error: a misspelt event name is not in EventMap
client.on('new_notifcation', () => {});

// @ts-expect-error: the payload of a catalogue client event is checked
client.send('message', { chat_id: '7', txt: 'hi' });
client.send('message', { chat_id: '7', text: 'hi' });

// State names are the five strings.
const s: ConnectionState = 'reconnecting';
// @ts-expect-error: not a state
const bad: ConnectionState = 'online';
client.onState((change: StateChange) => change.state === s || change.attempt > 0 || bad);

// Options are checked.
// @ts-expect-error: `url` is required
new SocklineClient({ token: 't' });
new SocklineClient({ url: 'ws://x/ws', getToken: async () => 't', backoff: { maxRetries: 3 } });

// Every state change says why, with one of the documented codes and a message.
client.onState(({ reason, message }: StateChange) => {
  const why: StateCause = reason;
  // @ts-expect-error: not a cause
  const wrong: StateCause = 'because';
  return message.length + why.length + wrong.length;
});

// A plain send's outcome arrives as an `ack` event.
client.on('ack', (a: SendAck) => (a.ok ? a.data : a.error?.code));
// @ts-expect-error: `ack` payloads have no `seq`
client.on('ack', (a) => a.seq);
