import { useEffect, useState } from 'react';
import { useConnectionState, useSockline } from 'sockline/react';

/** The five states; while reconnecting, the attempt and a countdown to the next retry. */
export function ConnectionIndicator() {
  const info = useConnectionState();
  const { state, attempt, reason, nextRetryMs } = info;
  const { reconnect, client } = useSockline();

  // `nextRetryMs` is as of the transition: turn it into a deadline once per transition.
  const [deadline, setDeadline] = useState(null);
  useEffect(() => {
    setDeadline(nextRetryMs == null ? null : Date.now() + nextRetryMs);
  }, [info, nextRetryMs]);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (deadline == null) return;
    const t = setInterval(() => setNow(Date.now()), 100);
    return () => clearInterval(t);
  }, [deadline]);

  let detail = '';
  if (state === 'reconnecting') {
    detail =
      deadline == null
        ? ` · attempt ${attempt} · waiting for the network`
        : ` · attempt ${attempt} · next try in ${(Math.max(0, deadline - now) / 1000).toFixed(1)} s`;
  } else if (state === 'connecting' && attempt > 0) {
    detail = ` · attempt ${attempt}`;
  } else if (state === 'disconnected' && client) {
    detail = reason ? ` · ${reason.replace(/_/g, ' ')}` : '';
  } else if (state === 'disconnected') {
    detail = ' · loading';
  }

  return (
    <div className={`conn conn-${state}`}>
      <span className="dot" />
      <span data-testid="connection-state" data-state={state} data-attempt={attempt}>
        {state}
        {detail}
      </span>
      {client && state !== 'connected' && state !== 'authenticating' && (
        <button className="small" onClick={reconnect}>
          {state === 'disconnected' ? 'Connect' : 'Retry now'}
        </button>
      )}
    </div>
  );
}
