// MQTT 5.0 reason codes (section 2.4) by name, and the MQTT 3.1/3.1.1 CONNACK
// return codes (section 3.2.2.3 of 3.1.1).

export const ReasonCode = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWillMessage: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** Reason code value to its name (the first name, where several share a value). */
export const REASON_NAMES: Readonly<Record<number, string>> = (() => {
  const names: Record<number, string> = {};
  for (const [name, code] of Object.entries(ReasonCode)) if (!(code in names)) names[code] = name;
  return names;
})();

export function reasonName(code: number): string {
  return REASON_NAMES[code] ?? `0x${code.toString(16).padStart(2, '0')}`;
}

/** MQTT 3.1 / 3.1.1 CONNACK return codes. */
export const ConnackReturnCode = {
  Accepted: 0x00,
  UnacceptableProtocolVersion: 0x01,
  IdentifierRejected: 0x02,
  ServerUnavailable: 0x03,
  BadUsernameOrPassword: 0x04,
  NotAuthorized: 0x05,
} as const;

/** Map a v5 CONNACK reason code to the closest 3.1.1 return code. */
export function v5ConnackToV3(code: number): number {
  switch (code) {
    case 0x00: return 0x00;
    case 0x84: return 0x01;
    case 0x85: return 0x02;
    case 0x86: return 0x04;
    case 0x87: case 0x8a: case 0x8c: return 0x05;
    case 0x90: return 0x05; // a will topic the server refuses (maxTopicLevels)
    default: return 0x03; // server unavailable / busy / other
  }
}

/** The reason codes a CONNACK may carry besides Success (MQTT 5.0 section 3.2.2.2) [MQTT-3.2.2-8]. */
export const CONNACK_REFUSAL_CODES: ReadonlySet<number> = new Set([
  0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f,
]);
