import { isIP } from 'node:net';
import { invalidArgument } from '../common/errors';

/** Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/**
 * The console answers only on loopback unless the operator says otherwise: the
 * login token then crosses a network in clear text (no TLS here), so that needs
 * `--allow-remote`, and is warned about.
 */
export function checkBind(host: string, allowRemote: boolean): { warning?: string } {
  if (isLoopback(host)) return {};
  if (!allowRemote) {
    throw invalidArgument(`--bind ${host} is not a loopback address; the console serves plain HTTP with a login token, so it binds 127.0.0.1 unless you pass --allow-remote (then put it behind TLS)`);
  }
  return { warning: `the console is bound to ${host}, reachable from other machines over plain HTTP; anyone who sees the login URL or a session cookie on the network is an operator` };
}
