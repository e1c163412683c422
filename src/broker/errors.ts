// Every error Petrel throws at its users has a code, in one place (as Fastify
// does with FST_ERR_*), so that embedders can branch on `err.code`.

export const ErrorCodes = {
  PETREL_ERR_OPTION: 'an option has an invalid value',
  PETREL_ERR_UNKNOWN_HOOK: 'an unknown hook name was given',
  PETREL_ERR_CLOSED: 'the broker is closed',
  PETREL_ERR_NOT_STARTED: 'the broker has not been started',
  PETREL_ERR_TOPIC: 'a topic name or filter is invalid',
  PETREL_ERR_PAYLOAD: 'a payload is invalid',
  PETREL_ERR_LISTEN: 'a listener could not be opened',
  PETREL_ERR_STORE: 'the store failed',
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

export class PetrelError extends Error {
  readonly code: ErrorCode;
  /** For option errors: the option key, e.g. 'limits.maxPacketSize'. */
  readonly key: string | undefined;
  constructor(code: ErrorCode, message: string, options?: { key?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PetrelError';
    this.code = code;
    this.key = options?.key;
  }
}

export function optionError(key: string, reason: string): PetrelError {
  return new PetrelError('PETREL_ERR_OPTION', `${key}: ${reason}`, { key });
}
