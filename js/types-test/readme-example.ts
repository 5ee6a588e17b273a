// The README's TypeScript example, type-checked by `make test-types` (imports adjusted: the
// README imports from 'sockline').
import init, { SocklineClient } from './index.js';
import type { NewNotification, StateChange } from './index.js';

export async function start(fetchToken: () => Promise<string>): Promise<SocklineClient> {
  await init();
  const client = new SocklineClient({ url: 'wss://example.com/ws', getToken: fetchToken });
  const unread: NewNotification[] = [];
  client.on('new_notification', (n) => unread.push(n)); // n: NewNotification
  client.on('unread_count_update', ({ count }) => console.log(`unread: ${count}`));
  client.onState(({ state, attempt, nextRetryMs }: StateChange) => {
    if (state === 'reconnecting') console.log(`retry ${attempt} in ${nextRetryMs} ms`);
  });
  client.connect();
  try {
    const reply = (await client.request('get_unread_count', {}, { timeoutMs: 5000 })) as { count: number };
    console.log(reply.count);
  } catch (e) {
    console.warn((e as Error & { code: string }).code); // 'timeout', 'disconnected', or the server's code
  }
  return client;
}
