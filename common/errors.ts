/**
 * Typed errors shared by server, agent and CLI. Inner code throws these (wrapping
 * a cause where there is one); only the edges (HTTP handlers, gRPC handlers, CLI)
 * map a code to a status. Messages are lower-case, without a final period, and
 * written so a person can act on them. They must never contain key material or tokens.
 */
export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'UNAUTHENTICATED',
  'FAILED_PRECONDITION',
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE',
  'UNIMPLEMENTED',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class TesseraError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.code = code;
    this.name = new.target.name;
  }
}

export const invalidArgument = (msg: string, cause?: unknown) => new TesseraError('INVALID_ARGUMENT', msg, { cause });
export const notFound = (msg: string) => new TesseraError('NOT_FOUND', msg);
export const alreadyExists = (msg: string) => new TesseraError('ALREADY_EXISTS', msg);
export const permissionDenied = (msg: string) => new TesseraError('PERMISSION_DENIED', msg);
export const failedPrecondition = (msg: string) => new TesseraError('FAILED_PRECONDITION', msg);
export const unavailable = (msg: string, cause?: unknown) => new TesseraError('UNAVAILABLE', msg, { cause });

/** HTTP status for each code. Anything not a TesseraError is a 500 with a generic body. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  UNAUTHENTICATED: 401,
  FAILED_PRECONDITION: 412,
  RESOURCE_EXHAUSTED: 429,
  UNAVAILABLE: 503,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
};

/** gRPC status code numbers (grpc.status) for each code, so common/ needs no grpc import. */
export const GRPC_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  UNAUTHENTICATED: 16,
  FAILED_PRECONDITION: 9,
  RESOURCE_EXHAUSTED: 8,
  UNAVAILABLE: 14,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
};

export function isTesseraError(e: unknown): e is TesseraError {
  return e instanceof TesseraError;
}
