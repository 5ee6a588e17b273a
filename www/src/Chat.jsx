import { useEffect, useRef, useState } from 'react';
import { useSockline, useSocklineEvent } from 'sockline/react';

const CHAT = 'lobby';
const ROOM = `chat:${CHAT}`;
const STATUS_LABEL = { queued: '◷ queued', sending: '… sending', sent: '✓ sent', delivered: '✓✓ delivered', failed: '✕ failed' };

/**
 * A chat room. Own messages go through states: `queued` (sent while not connected: the client's
 * outbox keeps it) → `sending` (on the wire) → `sent` (the server acked it with its id) →
 * `delivered` (it came back through the room, so the room got it).
 */
export function Chat({ user }) {
  const { join, leave, request, send, isConnected } = useSockline();
  const [messages, setMessages] = useState([]);
  const [typing, setTyping] = useState({});
  const [draft, setDraft] = useState('');
  const echoed = useRef(new Set()); // server ids of own messages seen in the room
  const nextKey = useRef(0);
  const typingSent = useRef(false);
  const typingTimer = useRef(null);
  const listRef = useRef(null);

  useEffect(() => {
    join(ROOM);
    return () => leave(ROOM);
  }, [join, leave]);

  // Queued messages go on the wire when the connection comes back.
  useEffect(() => {
    if (isConnected) setMessages((ms) => ms.map((m) => (m.status === 'queued' ? { ...m, status: 'sending' } : m)));
  }, [isConnected]);

  useEffect(() => {
    const el = listRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages]);

  useSocklineEvent('new_message', (m) => {
    if (m.chat_id !== CHAT) return;
    if (m.from === user) echoed.current.add(m.id);
    setMessages((ms) => {
      if (ms.some((x) => x.serverId === m.id)) {
        return ms.map((x) => (x.serverId === m.id ? { ...x, status: 'delivered' } : x));
      }
      // Our own message whose ack is still on its way: the ack will name it.
      if (m.from === user && ms.some((x) => x.mine && x.serverId == null && x.text === m.text)) return ms;
      return [...ms, { key: `s${m.id}`, serverId: m.id, from: m.from, text: m.text, at: m.ts, mine: m.from === user, status: 'delivered' }];
    });
    setTyping((t) => {
      if (!t[m.from]) return t;
      const { [m.from]: _, ...rest } = t;
      return rest;
    });
  });

  useSocklineEvent('typing_update', ({ chat_id, user: who, typing: on }) => {
    if (chat_id !== CHAT || who === user) return;
    setTyping((t) => {
      const { [who]: _, ...rest } = t;
      return on ? { ...rest, [who]: Date.now() + 6000 } : rest;
    });
  });
  // A typing_stop can be lost with a closed tab: expire stale entries.
  useEffect(() => {
    const t = setInterval(() => {
      setTyping((cur) => {
        const now = Date.now();
        const live = Object.entries(cur).filter(([, until]) => until > now);
        return live.length === Object.keys(cur).length ? cur : Object.fromEntries(live);
      });
    }, 1000);
    return () => clearInterval(t);
  }, []);

  const stopTyping = () => {
    clearTimeout(typingTimer.current);
    if (typingSent.current) {
      typingSent.current = false;
      send('typing_stop', { chat_id: CHAT });
    }
  };
  const onChange = (e) => {
    setDraft(e.target.value);
    // Typing is ephemeral: not worth queueing while offline.
    if (!isConnected) return;
    if (!typingSent.current) {
      typingSent.current = true;
      send('typing_start', { chat_id: CHAT });
    }
    clearTimeout(typingTimer.current);
    typingTimer.current = setTimeout(stopTyping, 2000);
  };

  const submit = () => {
    const text = draft.trim();
    if (!text) return;
    setDraft('');
    stopTyping();
    const key = `l${nextKey.current++}`;
    const setStatus = (fn) => setMessages((ms) => ms.map((m) => (m.key === key ? fn(m) : m)));
    setMessages((ms) => [
      ...ms,
      { key, from: user, text, at: new Date().toISOString(), mine: true, status: isConnected ? 'sending' : 'queued' },
    ]);
    request('message', { chat_id: CHAT, text }, { timeoutMs: 120_000 }).then(
      ({ id }) => {
        setMessages((ms) =>
          ms
            .filter((m) => !(m.serverId === id && m.key !== key))
            .map((m) => (m.key === key ? { ...m, serverId: id, status: echoed.current.has(id) ? 'delivered' : 'sent' } : m)),
        );
      },
      (e) => setStatus((m) => ({ ...m, status: 'failed', error: e?.code ?? String(e) })),
    );
  };

  const typers = Object.keys(typing);
  return (
    <section className="panel chat">
      <h2>
        Chat <small>#{CHAT}</small>
      </h2>
      <ol className="messages" data-testid="chat-messages" ref={listRef}>
        {messages.length === 0 && <li className="empty">No messages yet. Say hi (open another user in a second tab).</li>}
        {messages.map((m) => (
          <li
            key={m.key}
            className={`msg ${m.mine ? 'mine' : ''} st-${m.status}`}
            data-testid="chat-message"
            data-status={m.status}
            title={m.error}
          >
            <span className="from">{m.from}</span>
            <span className="body">{m.text}</span>
            <span className="meta">
              {new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}
              {m.mine && <span className="status"> {STATUS_LABEL[m.status]}</span>}
            </span>
          </li>
        ))}
      </ol>
      <div className="typing" data-testid="typing-indicator">
        {typers.length === 1 && `${typers[0]} is typing…`}
        {typers.length > 1 && `${typers.join(', ')} are typing…`}
      </div>
      <input
        data-testid="chat-input"
        value={draft}
        placeholder={isConnected ? 'Type a message, Enter to send' : 'Not connected: messages are queued and sent on reconnect'}
        onChange={onChange}
        onBlur={stopTyping}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.nativeEvent.isComposing) {
            e.preventDefault();
            submit();
          }
        }}
      />
    </section>
  );
}
