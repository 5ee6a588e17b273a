'use client';
// The parts that use sockline/react's hooks: client components (they render on the server too,
// with the provider's initial state, and hydrate in the browser).
import { useState } from 'react';
import type { NewNotification } from 'sockline';
import { useConnectionState, useRoom, useSocklineEvent } from 'sockline/react';

// An app's own events, typed for `useSocklineEvent` (the catalogue's, like `new_notification`,
// are typed already).
declare module 'sockline' {
  interface EventMap {
    announcement: { text: string };
  }
}

export function Status() {
  const { state, attempt, reason } = useConnectionState();
  const [error, setError] = useState('');
  // Problems that do not stop the client (a refused room, a failed send, …) come as `error` events.
  useSocklineEvent('error', (e) => setError(`${e.code}: ${e.message}`));
  return (
    <p>
      Connection: <b id="state">{state}</b>
      {attempt > 0 ? ` (retry ${attempt})` : ''} <small id="reason">{reason}</small>{' '}
      <output id="error">{error}</output>
    </p>
  );
}

export function Feed() {
  const [items, setItems] = useState<string[]>([]);
  useRoom('chat:lobby');
  useSocklineEvent('new_notification', (n: NewNotification) =>
    setItems((xs) => [`notification: ${n.title ?? n.id}`, ...xs]),
  );
  useSocklineEvent('announcement', ({ text }) => setItems((xs) => [`chat:lobby: ${text}`, ...xs]));
  return (
    <ul id="feed">
      {items.length === 0 ? <li className="empty">nothing yet</li> : items.map((t, i) => <li key={i}>{t}</li>)}
    </ul>
  );
}
