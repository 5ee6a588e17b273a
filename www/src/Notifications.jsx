import { useCallback, useEffect, useRef, useState } from 'react';
import { useSockline, useSocklineEvent } from 'sockline/react';

const SAMPLES = [
  ['New follower', 'bob started following you'],
  ['Build passed', 'main is green again (#1287)'],
  ['Invoice paid', 'ACME Corp paid invoice 2024-113'],
  ['Mentioned', 'carol mentioned you in #design'],
  ['Deploy finished', 'v0.1.0 is live in eu-west'],
];

/**
 * Asks the server to push a notification to `user`. Demo only: a real app's backend calls
 * POST /notify with its server key; here the page uses `--dev`'s well-known key `dev-key`.
 */
async function pushSample(user, n) {
  const [title, body] = SAMPLES[n % SAMPLES.length];
  const id = `n-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  await fetch('/notify', {
    method: 'POST',
    headers: { authorization: 'Bearer dev-key', 'content-type': 'application/json' },
    body: JSON.stringify({ user, event: 'new_notification', data: { id, title, body } }),
  });
}

export function Notifications({ user }) {
  const { request, send, isConnected } = useSockline();
  const [items, setItems] = useState([]);
  const [unread, setUnread] = useState(0);
  const pushed = useRef(0);

  const refresh = useCallback(() => {
    request('get_unread_count', {})
      .then((r) => setUnread(r.count))
      .catch(() => {});
  }, [request]);
  // The server is the source of truth for the count: ask after every (re)connect.
  useEffect(() => {
    if (isConnected) refresh();
  }, [isConnected, refresh]);

  useSocklineEvent('new_notification', (n) => {
    setItems((xs) => (xs.some((x) => x.id === n.id) ? xs : [{ ...n, read: false, at: new Date() }, ...xs]));
    refresh();
  });
  useSocklineEvent('unread_count_update', ({ count }) => setUnread(count));
  useSocklineEvent('notification_read', ({ id }) =>
    setItems((xs) => xs.map((x) => (x.id === id ? { ...x, read: true } : x))),
  );

  const markRead = (id) => send('mark_notification_read', { id });
  const markAll = () => items.filter((x) => !x.read).forEach((x) => markRead(x.id));
  const trigger = (count) => {
    for (let i = 0; i < count; i++) pushSample(user, pushed.current++).catch(() => {});
  };

  return (
    <section className="panel notifications">
      <h2>
        Notifications{' '}
        <span className={`badge ${unread ? '' : 'zero'}`} data-testid="unread-count" title="unread">
          {unread}
        </span>
      </h2>
      <div className="actions">
        <button onClick={() => trigger(1)} data-testid="notify-one">
          Push a notification
        </button>
        <button onClick={() => trigger(3)}>Push 3</button>
        <button onClick={markAll} disabled={!items.some((x) => !x.read)}>
          Mark all read
        </button>
      </div>
      <ul data-testid="notification-list" className="list">
        {items.length === 0 && <li className="empty">No notifications yet. Push one.</li>}
        {items.map((n) => (
          <li key={n.id} className={n.read ? 'read' : 'unread'} data-testid="notification" data-id={n.id}>
            <div className="text">
              <b>{n.title ?? n.id}</b>
              {n.body && <span>{n.body}</span>}
            </div>
            <time>{n.at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}</time>
            {n.read ? (
              <span className="muted">read</span>
            ) : (
              <button className="small" onClick={() => markRead(n.id)}>
                Mark read
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
