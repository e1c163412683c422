// The states of a client connection, apart from client.ts so that the packet handlers, which client.ts
// dispatches to, need nothing of it at run time (no import cycle).

export const ClientState = {
  /** Waiting for CONNECT. */
  New: 0,
  /** CONNECT received; authentication (a hook or an AUTH exchange) under way. */
  Authenticating: 1,
  Connected: 2,
  /** Closing or closed: nothing more is read or sent. */
  Closed: 3,
} as const;
export type ClientState = (typeof ClientState)[keyof typeof ClientState];
