// TCP servers (IPv4 and IPv6; several at once) under every listener: the tcp
// transport hands its sockets to the broker; tls, ws and wss run their stages
// on them first (listener.ts).

import net from 'node:net';

export interface BoundAddress {
  transport: 'tcp' | 'tls' | 'ws' | 'wss';
  /** The listener's name (ListenerOptions.name; default `${transport}:${port}`). */
  name: string;
  host: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export interface TcpListener {
  readonly address: BoundAddress;
  /** Stop accepting; existing connections stay. */
  close(): Promise<void>;
}

/**
 * Listen on host:port. An empty host means every address: '::' with dual stack where the system has IPv6,
 * else '0.0.0.0'. keepAliveMs > 0 turns TCP keepalive on for every accepted socket, with that much silence
 * before the first probe (later probes follow the system's settings), so a peer that vanished without a
 * word is found even when it asked for no MQTT keep alive.
 */
export async function listenTcp(
  host: string,
  port: number,
  onSocket: (socket: net.Socket) => void,
  keepAliveMs = 0,
  transport: BoundAddress['transport'] = 'tcp',
  name?: string,
): Promise<TcpListener> {
  const accept =
    keepAliveMs > 0
      ? (socket: net.Socket): void => {
          socket.setKeepAlive(true, keepAliveMs);
          onSocket(socket);
        }
      : onSocket;
  // allowHalfOpen: when the peer ends its side, ours is ended by the Connection (after what the broker must
  // commit first), not by Node at once.
  const server = net.createServer({ noDelay: true, pauseOnConnect: false, allowHalfOpen: true }, accept);
  server.maxConnections = Infinity;
  const tryListen = (h: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        server.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host: h, port, ipv6Only: false, backlog: 4096 });
    });
  if (host === '') {
    try {
      await tryListen('::');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL' && code !== 'EINVAL') throw err;
      await tryListen('0.0.0.0');
    }
  } else {
    await tryListen(host);
  }
  server.on('error', () => {
    // accept errors (EMFILE and the like) must not bring the broker down
  });
  const a = server.address() as net.AddressInfo;
  const address: BoundAddress = {
    transport,
    name: name ?? `${transport}:${a.port}`,
    host: a.address,
    port: a.port,
    family: a.family === 'IPv6' ? 'IPv6' : 'IPv4',
  };
  return {
    address,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
