import type { ErrorRequestHandler, Request } from 'express';
import { HTTP_STATUS, TesseraError, invalidArgument, type ErrorCode } from '../../common/errors';
import type { Logger } from '../../common/log';
import { F } from '../../common/log';

/** Error body of every API: `{"error": {"code", "message"}}`. */
export function errorBody(code: ErrorCode, message: string) {
  return { error: { code, message } };
}

/**
 * The edge mapping of errors (step-ca render, SPIRE MakeErr): TesseraErrors map to
 * their status with their message; express's own body errors become 400/413; any
 * other error is logged and answered 500 with a generic message (no internals).
 */
export function errorHandler(log: Logger, api: string, onError?: (code: ErrorCode) => void): ErrorRequestHandler {
  return (err, req, res, _next) => {
    let e: TesseraError;
    const type = (err as { type?: string }).type;
    if (err instanceof TesseraError) e = err;
    else if (type === 'entity.parse.failed') e = invalidArgument(`request body is not valid JSON: ${(err as Error).message}`);
    else if (type === 'entity.too.large') e = new TesseraError('INVALID_ARGUMENT', 'request body is too large');
    else if (type === 'encoding.unsupported' || type === 'charset.unsupported') e = invalidArgument('request body must be UTF-8 JSON');
    else {
      log.error({ err, path: req.path }, 'internal error');
      e = new TesseraError('INTERNAL', 'internal error; see the server log');
    }
    onError?.(e.code);
    if (e.code !== 'INTERNAL') log.debug({ [F.code]: e.code, path: req.path, msg: e.message }, 'request failed');
    const status = type === 'entity.too.large' ? 413 : HTTP_STATUS[e.code];
    if (!res.headersSent) res.status(status).json(errorBody(e.code, e.message));
  };
}

/** A required JSON object body. */
export function body(req: Request): Record<string, unknown> {
  const b = req.body as unknown;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    throw invalidArgument('request body must be a JSON object (Content-Type: application/json)');
  }
  return b as Record<string, unknown>;
}

/** Decodes a base64 (or base64url) DER field, naming the field in the error. */
export function derField(v: unknown, field: string): Buffer {
  if (typeof v !== 'string' || v.length === 0) throw invalidArgument(`${field} must be a base64 string of DER bytes`);
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(v)) throw invalidArgument(`${field} is not valid base64`);
  return Buffer.from(v, v.includes('-') || v.includes('_') ? 'base64url' : 'base64');
}

/** Optional non-negative integer query/body parameter. */
export function intParam(v: unknown, field: string, opts: { min?: number; max?: number } = {}): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < (opts.min ?? 0) || (opts.max !== undefined && n > opts.max)) {
    throw invalidArgument(`${field} must be an integer${opts.max !== undefined ? ` between ${opts.min ?? 0} and ${opts.max}` : ' >= 0'}`);
  }
  return n;
}
