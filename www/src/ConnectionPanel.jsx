import { useEffect, useRef, useState } from 'react';
import { useSockline } from 'sockline/react';

/**
 * What the SDK is doing, live: a timeline of state changes with their causes and retry delays,
 * the counters from `stats()`, and buttons that make real faults happen through the
 * `--dev`-only server routes (`/dev/drop`, `/dev/outage`, `/dev/expire`): a cut, the backoff and
 * a queued message arriving once can be watched, not read about.
 */
export function ConnectionPanel({ user }) {
  const { client } = useSockline();
  const [timeline, setTimeline] = useState([]);
  const [stats, setStats] = useState(null);
  const [code, setCode] = useState('1011');
  const [fault, setFault] = useState('');
  const started = useRef(performance.now());

  useEffect(() => {
    if (!client) return undefined;
    const off = client.onState((s) => {
      const at = ((performance.now() - started.current) / 1000).toFixed(1);
      setTimeline((xs) => [{ ...s, at, n: xs.length }, ...xs].slice(0, 40));
    });
    const tick = setInterval(() => setStats(client.stats()), 500);
    setStats(client.stats());
    return () => {
      off();
      clearInterval(tick);
    };
  }, [client]);

  const dev = async (path, label) => {
    setFault(`${label}…`);
    const res = await fetch(`${path}${path.includes('?') ? '&' : '?'}user=${encodeURIComponent(user)}`, {
      method: 'POST',
    });
    const text = await res.text();
    setFault(res.ok ? `${label}: ${text}` : `${label} failed: HTTP ${res.status} ${text}`);
  };

  return (
    <section className="panel connection" data-testid="connection-panel">
      <div className="controls">
      <h2>
        Connection <small>what the SDK is doing</small>
      </h2>
      <div className="faults">
        <span className="field">
          <button data-testid="drop-link" onClick={() => dev(`/dev/drop?code=${code}`, 'drop my link')}>
            Drop my link
          </button>
          <select value={code} onChange={(e) => setCode(e.target.value)} data-testid="drop-code">
            <option value="1011">1011 server error</option>
            <option value="1012">1012 restart</option>
            <option value="1013">1013 try later</option>
            <option value="1001">1001 going away</option>
          </select>
        </span>
        <button
          data-testid="outage"
          onClick={async () => {
            // New sockets of this user are refused for 10 s; the live one is dropped so the
            // client has to come back through the outage (and shows its backoff meanwhile).
            await dev('/dev/outage?seconds=10', 'outage for 10 s');
            await dev('/dev/drop?code=1012', 'outage for 10 s, link dropped');
          }}
        >
          Outage for 10 s
        </button>
        <button data-testid="expire-token" onClick={() => dev('/dev/expire', 'expire my token')}>
          Expire my token
        </button>
        {fault && <span className="fault-note" data-testid="fault-note">{fault}</span>}
      </div>
      {stats && (
        <dl className="stats" data-testid="stats">
          <dt>RTT</dt>
          <dd data-testid="rtt">{stats.lastRttMs == null ? '–' : `${stats.lastRttMs} ms`}</dd>
          <dt>outbox</dt>
          <dd data-testid="outbox">{stats.outboxDepth}</dd>
          <dt>reconnects</dt>
          <dd data-testid="reconnects">{stats.reconnects}</dd>
          <dt>frames in/out</dt>
          <dd>
            {stats.framesIn}/{stats.framesOut}
          </dd>
          {'isLeader' in stats && (
            <>
              <dt>this tab</dt>
              <dd data-testid="leader">{stats.isLeader ? 'leader' : 'follower'}</dd>
            </>
          )}
        </dl>
      )}
      </div>
      <ol className="timeline" data-testid="timeline">
        {timeline.map((s) => (
          <li key={s.n} className={`conn-${s.state}`} data-state={s.state} data-reason={s.reason}>
            <span className="at">{s.at} s</span> <b>{s.state}</b>
            {s.attempt > 0 && <span> · attempt {s.attempt}</span>}
            <span className="why"> · {s.reason.replace(/_/g, ' ')}</span>
            {s.nextRetryMs != null && <span> · retry in {(s.nextRetryMs / 1000).toFixed(1)} s</span>}
            <div className="message">{s.message}</div>
          </li>
        ))}
      </ol>
    </section>
  );
}
