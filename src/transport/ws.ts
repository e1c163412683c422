// MQTT over WebSocket (MQTT 5.0 / 3.1.1 section 6) on the `ws` package: the
// HTTP upgrade is checked (path, Origin allow-list, subprotocol), and each
// WebSocket becomes a Duplex byte stream for the broker's Connection, with the
// same backpressure as a TCP socket.

import type { IncomingMessage } from 'node:http';
import type { Duplex as DuplexType } from 'node:stream';
import { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

/** Subprotocols accepted; the first the client offers is selected. */
export const MQTT_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'] as const;
/** Bytes a WebSocket message may carry beyond limits.maxPacketSize (a message may hold a packet and the start of the next). */
export const WS_PAYLOAD_SLACK = 4096;
/** Small writes collected by the stream (cork/writev) go out as one frame up to this size. */
const FRAME_JOIN = 64 * 1024;

/**
 * A WebSocket as a byte stream. Written bytes go out as binary frames [MQTT-6.0.0-1]; a write is done when `ws`
 * has handed its frame to the socket, so writableLength counts what ws still buffers (bufferedAmount) and
 * 'drain' comes when it is sent, as with a TCP socket. pause() stops reading from the underlying socket.
 */
export class WebSocketDuplex extends Duplex {
  readonly ws: WebSocket;
  /** The TCP (or TLS) socket under the WebSocket. */
  readonly raw: DuplexType;

  constructor(ws: WebSocket, raw: DuplexType) {
    super({ allowHalfOpen: false, decodeStrings: true });
    this.ws = ws;
    this.raw = raw;
    ws.on('message', (data: Buffer | Buffer[] | ArrayBuffer, isBinary: boolean) => {
      if (!isBinary) {
        // [MQTT-6.0.0-1] MQTT Control Packets are sent in binary data frames; any other data frame closes the connection.
        ws.close(1003, 'MQTT needs binary frames');
        this.destroy();
        return;
      }
      const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      // [MQTT-6.0.0-2] a frame may hold several packets or part of one: the stream has no frame boundaries.
      if (!this.push(chunk)) ws.pause();
    });
    ws.on('close', () => {
      this.push(null);
      this.destroy();
    });
    ws.on('error', () => {
      // Protocol errors (a frame above maxPayload, a bad frame): ws closes with the right code; 'close' follows.
      this.destroy();
    });
  }

  override _read(): void {
    if (!this.isPaused()) this.ws.resume();
  }

  override pause(): this {
    super.pause();
    this.ws.pause();
    return this;
  }

  override resume(): this {
    super.resume();
    this.ws.resume();
    return this;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== 1) {
      cb();
      return;
    }
    this.ws.send(chunk, { binary: true }, (err) => cb(err ?? null));
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== 1) {
      cb();
      return;
    }
    // Parts of one flush (a header and its payload) go out in as few frames as size allows.
    const frames: Buffer[] = [];
    let group: Buffer[] = [];
    let size = 0;
    for (const { chunk } of chunks) {
      if (size + chunk.length > FRAME_JOIN && group.length > 0) {
        frames.push(group.length === 1 ? group[0]! : Buffer.concat(group, size));
        group = [];
        size = 0;
      }
      group.push(chunk);
      size += chunk.length;
    }
    if (group.length > 0) frames.push(group.length === 1 ? group[0]! : Buffer.concat(group, size));
    for (let i = 0; i < frames.length - 1; i++) this.ws.send(frames[i]!, { binary: true });
    this.ws.send(frames[frames.length - 1]!, { binary: true }, (err) => cb(err ?? null));
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.ws.readyState === 1) this.ws.close(1000);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.ws.readyState !== 3) {
      // Closing (our close frame sent) or open: the socket goes now; a peer that answers nothing holds nothing.
      if (this.ws.readyState === 1) this.ws.close(1000);
      const t = setTimeout(() => this.ws.terminate(), 1000);
      t.unref();
      this.ws.once('close', () => clearTimeout(t));
    }
    cb(err);
  }
}

export interface WsSettings {
  /** Path of the endpoint, e.g. '/mqtt'. */
  path: string;
  allowedOrigins: readonly string[] | undefined;
  perMessageDeflate: boolean;
  /** Largest WebSocket message accepted (after inflating). */
  maxPayload: number;
}

export type UpgradeRefusal = 'path' | 'origin' | 'subprotocol' | 'not-websocket';

/** Write a bare HTTP error response and close. */
export function refuseHttp(socket: DuplexType, status: number, reason: string): void {
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${reason.length}\r\n\r\n${reason}`);
  }
  const t = setTimeout(() => socket.destroy(), 1000);
  t.unref();
}

/**
 * The upgrade checks and the ws server. `handle(req, socket, head, accepted, refused)`: accepted gets the
 * WebSocket as a Duplex; refused gets why (the response is already written).
 */
export function createWsUpgrade(s: WsSettings): (
  req: IncomingMessage,
  socket: DuplexType,
  head: Buffer,
  accepted: (stream: WebSocketDuplex) => void,
  refused: (why: UpgradeRefusal) => void,
) => void {
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: s.maxPayload,
    // Off unless enabled; when on, ws bounds the inflated size of a message by maxPayload too.
    perMessageDeflate: s.perMessageDeflate ? { threshold: 1024, concurrencyLimit: 4 } : false,
    handleProtocols: (protocols) => {
      for (const p of protocols) if ((MQTT_SUBPROTOCOLS as readonly string[]).includes(p)) return p;
      return false;
    },
  });
  const origins = s.allowedOrigins === undefined ? null : new Set(s.allowedOrigins);
  return (req, socket, head, accepted, refused) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== s.path) {
      refuseHttp(socket, 404, 'Not Found');
      refused('path');
      return;
    }
    if (origins !== null) {
      const origin = req.headers.origin;
      // A client that sends no Origin (not a browser) passes; a browser page from elsewhere does not.
      if (origin !== undefined && !origins.has(origin)) {
        refuseHttp(socket, 403, 'Forbidden');
        refused('origin');
        return;
      }
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    // [MQTT-6.0.0-3] the client offers "mqtt"; [MQTT-6.0.0-4] the server selects it ('mqttv3.1' for old 3.1 clients).
    if (!offered.some((p) => (MQTT_SUBPROTOCOLS as readonly string[]).includes(p))) {
      refuseHttp(socket, 400, 'Bad Request: subprotocol mqtt required');
      refused('subprotocol');
      return;
    }
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      refuseHttp(socket, 400, 'Bad Request');
      refused('not-websocket');
      return;
    }
    let done = false;
    const onClose = (): void => {
      if (!done) refused('not-websocket');
      done = true;
    };
    socket.once('close', onClose);
    wss.handleUpgrade(req, socket, head, (ws) => {
      done = true;
      socket.off('close', onClose);
      ws.binaryType = 'nodebuffer';
      accepted(new WebSocketDuplex(ws, socket));
    });
  };
}
