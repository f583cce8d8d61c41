import pino from 'pino';

/** The logger the SDK writes to: pino's, or anything with the same four methods. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** JSON lines on stdout (pino), for when the application passes no logger of its own. */
export function defaultLogger(): Logger {
  return pino({ name: 'tessera-sdk', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } });
}
