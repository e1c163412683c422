// The options of one listener (the embedding API's listeners[i]; the CLI and config file map onto them).
// Declared here, beside the transports that read them; src/broker/options.ts re-exports them and checks them.

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss';

export interface ListenerOptions {
  /** 'tcp' (default), 'tls', 'ws' (MQTT over WebSocket) or 'wss' (over WebSocket over TLS). */
  transport?: Transport;
  /** Port; 0 picks a free one (read it from broker.listen()'s result). Default 1883 (tcp), 8883 (tls), 8080 (ws), 8081 (wss). */
  port?: number;
  /** Address to bind; default '::' (all IPv6 and IPv4 addresses where the system allows dual stack), else '0.0.0.0'. */
  host?: string;
  /** Name in logs and metrics; default `${transport}:${port}`. */
  name?: string;

  // ---- TLS (tls, wss) ----
  /** PEM certificate chain file (required for tls and wss). */
  cert?: string;
  /** PEM private key file (required for tls and wss). */
  key?: string;
  /** Passphrase of the key, if it is encrypted. */
  passphrase?: string;
  /** PEM CA bundle that client certificates are checked against (mTLS). */
  ca?: string;
  /** Lowest TLS version accepted. Default 'TLSv1.2'. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list (TLS 1.2 and below). Default: Node's. */
  ciphers?: string;
  /** Certificates by server name (SNI): { 'host.example': { cert, key } }. */
  sni?: Record<string, { cert: string; key: string; passphrase?: string }>;
  /**
   * Refuse clients without a certificate signed by `ca` (mTLS): the TLS handshake fails, so such a client never
   * reaches CONNECT handling. Needs `ca`. Default false.
   */
  requireCertificate?: boolean;
  /** PEM certificate revocation list file (of `ca`); a revoked client certificate fails the handshake. Needs requireCertificate. */
  crl?: string;
  /**
   * The client certificate as the username: 'cn' (Mosquitto's use_identity_as_username) or 'subject', the RFC 2253
   * subject, e.g. 'CN=device-1,O=Acme,C=DE' (use_subject_as_username), given to authentication as
   * Connection.meta.certificateUsername. A certificate without a CN (for 'cn') is closed. Needs requireCertificate.
   * Default 'none'.
   */
  identityAsUsername?: 'none' | 'cn' | 'subject';

  // ---- WebSocket (ws, wss) ----
  /** HTTP path of the WebSocket endpoint (others get 404; the query string is ignored). Subprotocols 'mqtt' and 'mqttv3.1'; others get 400. Default '/mqtt'. */
  path?: string;
  /** Origin header values allowed (exact match; others get 403). A request without Origin (not a browser) passes. Default: any. */
  allowedOrigins?: string[];
  /** Negotiate permessage-deflate. Default false. Inflated messages are bounded like the others (limits.maxPacketSize + 4 KiB): a bomb is closed with 1009. */
  perMessageDeflate?: boolean;

  // ---- PROXY protocol (v1 and v2) ----
  /**
   * Expect a PROXY protocol header (v1 or v2) first on every connection, before TLS or the HTTP upgrade, within
   * limits.connectTimeout. The address it carries is the client's for hooks, logs and bans; v2 LOCAL, v1 UNKNOWN and
   * v2 UNSPEC keep the socket's own. Malformed, oversized (v2 body > 4096 bytes) or late headers are closed. Default false.
   */
  proxyProtocol?: boolean;
  /**
   * Source addresses (CIDRs, IPv4 or IPv6; IPv4-mapped IPv6 sources match IPv4 ranges) allowed to send a PROXY header;
   * others are closed at accept. Default ['127.0.0.1/8', '::1/128'].
   */
  trustedProxies?: string[];

  // ---- limits of this listener ----
  /** Connections open at once on this listener; 0 = no limit. Default 0. */
  maxConnections?: number;
  /** New connections per second on this listener (a token bucket, burst = the rate); 0 = no limit. Default 0. */
  connectionRate?: number;
}

/** A listener with its transport, port and host settled (host '' = every address). */
export type ResolvedListener = ListenerOptions & { transport: Transport; port: number; host: string };
