import { TesseraError, alreadyExists, unavailable } from '../../../common/errors';

/**
 * PostgreSQL failures as the store's typed errors. `pg` puts the SQLSTATE in
 * `err.code` (23505 unique violation, 40001 serialization failure, 40P01 deadlock,
 * 57014 statement timeout, 57P01..57P03 shutdown, class 08 connection) and a
 * Node errno (ECONNREFUSED, ECONNRESET, ...) there while the server is down.
 */

interface PgError {
  code?: string;
  constraint?: string;
  message?: string;
}

const asPg = (err: unknown): PgError => (typeof err === 'object' && err !== null ? (err as PgError) : {});

export const isUniqueViolation = (err: unknown): boolean => asPg(err).code === '23505';
export const constraintOf = (err: unknown): string | undefined => asPg(err).constraint;

/** A transaction that may simply be run again. */
export const isRetryable = (err: unknown): boolean => ['40001', '40P01'].includes(asPg(err).code ?? '');

const NODE_NET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

/** The database cannot be reached or is shutting down: the caller should answer 503 / UNAVAILABLE and try later. */
export function isUnreachable(err: unknown): boolean {
  const e = asPg(err);
  const code = e.code ?? '';
  if (NODE_NET.has(code) || code.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
  // pg's own messages for a pool that cannot connect in time or a connection that died
  return /timeout exceeded when trying to connect|Connection terminated|connection timeout/i.test(e.message ?? '');
}

/**
 * Maps anything a query threw that is not already a TesseraError: unreachable and
 * timed-out statements become UNAVAILABLE (with a message that names no host or
 * password), everything else passes through as it is (an internal error).
 */
export function mapPgError(err: unknown): unknown {
  if (err instanceof TesseraError) return err;
  if (isUnreachable(err)) return unavailable('the PostgreSQL datastore is unreachable; the server retries by itself', err);
  if (asPg(err).code === '57014') return unavailable('a datastore statement timed out (statement_timeout)', err);
  return err;
}

/** ALREADY_EXISTS for a unique violation, with the message `byConstraint` picks. */
export function mapUnique(err: unknown, byConstraint: (constraint: string | undefined) => string): unknown {
  return isUniqueViolation(err) ? alreadyExists(byConstraint(constraintOf(err))) : err;
}
