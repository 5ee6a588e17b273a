// A bare `ws` broadcast server, one of the peers examples/server_load.rs measures sockline
// against: a text frame `{"join":ROOM}` joins a room (answered `{"joined":ROOM}`), and
// `POST /notify {room,event,data}` sends `{"event":…,"data":…}` to every socket in the room,
// encoded once. No auth, no replay, no acks: the least a Node server can do for the same job.
//
//   node bench/peers/ws-server.mjs [PORT]

import { WebSocketServer } from 'ws';
import { handler, http, listen, portArg } from './http.mjs';

/** room → Set<WebSocket> */
const rooms = new Map();

function fanOut(room, event, data) {
  const members = rooms.get(room);
  if (!members) return 0;
  const frame = Buffer.from(JSON.stringify({ event, data }));
  for (const ws of members) ws.send(frame, { binary: false });
  return members.size;
}

const server = http.createServer(handler({ connections: () => wss.clients.size, fanOut }));
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 });

wss.on('connection', (ws) => {
  const joined = new Set();
  ws.on('message', (raw, isBinary) => {
    let msg;
    try {
      msg = isBinary ? null : JSON.parse(raw.toString('utf8'));
    } catch {
      msg = null;
    }
    const room = msg?.join;
    if (typeof room !== 'string' || room === '') {
      ws.send(JSON.stringify({ error: 'expected {"join":ROOM}' }));
      return;
    }
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(ws);
    joined.add(room);
    ws.send(JSON.stringify({ joined: room }));
  });
  ws.on('close', () => {
    for (const room of joined) {
      const members = rooms.get(room);
      members?.delete(ws);
      if (members?.size === 0) rooms.delete(room);
    }
  });
  ws.on('error', () => {});
});

listen(server, portArg(), () => {
  for (const ws of wss.clients) ws.terminate();
});
