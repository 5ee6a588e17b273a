// A socket.io broadcast server, one of the peers examples/server_load.rs measures sockline
// against: the event `join` (with an ack) joins a room, and `POST /notify {room,event,data}`
// is `io.to(room).emit(event, data)`. WebSocket transport only (no long-polling), no
// per-message deflate, default heartbeat (25 s ping), no connection state recovery.
//
//   node bench/peers/socketio-server.mjs [PORT]

import { Server } from 'socket.io';
import { handler, http, listen, portArg } from './http.mjs';

// socket.io takes over the server's request listener and passes every request that is not
// under /socket.io/ on to this one.
const server = http.createServer(handler({ connections: () => io.engine.clientsCount, fanOut }));
const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 64 * 1024,
});

function fanOut(room, event, data) {
  io.to(room).emit(event, data);
  return io.sockets.adapter.rooms.get(room)?.size ?? 0;
}

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    const ok = typeof room === 'string' && room !== '';
    if (ok) socket.join(room);
    if (typeof ack === 'function') ack(ok ? 'joined' : 'expected join(ROOM)');
  });
});

listen(server, portArg(), () => io.close());
