import { useEffect } from 'react';
import { useSockline } from 'sockline/react';
import { ConnectionIndicator } from './ConnectionIndicator.jsx';
import { Notifications } from './Notifications.jsx';
import { Chat } from './Chat.jsx';
import { ConnectionPanel } from './ConnectionPanel.jsx';

export function App({ user }) {
  // For the console (and the e2e tests): `sockline.stats()`.
  const { client } = useSockline();
  useEffect(() => {
    window.sockline = client;
  }, [client]);
  return (
    <div className="app">
      <header>
        <h1>
          sockline <small>demo</small>
        </h1>
        <ConnectionIndicator />
        <span className="who">
          signed in as <b data-testid="user">{user}</b> · <a href="/">switch</a>
        </span>
      </header>
      <main>
        <ConnectionPanel user={user} />
        <Notifications user={user} />
        <Chat user={user} />
      </main>
    </div>
  );
}
