import http from 'node:http';
import { TesseraError, ERROR_CODES, type ErrorCode } from '../common/errors';
import { defaultClientSocket } from '../common/fs/runtime-paths';
import { assertTrustedSocketDir } from '../common/fs/trusted-socket';

/**
 * Where the admin socket is: --admin-socket, else TESSERA_ADMIN_SOCKET, else the
 * default (root's under /run/tessera when it exists, else this user's, see
 * common/fs/runtime-paths.ts), whose directory is then checked before use.
 */
export function adminSocketPath(flag: string | undefined, env: NodeJS.ProcessEnv): { path: string; isDefault: boolean } {
  const explicit = flag ?? (env.TESSERA_ADMIN_SOCKET || undefined);
  return explicit ? { path: explicit, isDefault: false } : { path: defaultClientSocket('admin'), isDefault: true };
}

/**
 * A small JSON client for the admin API over its Unix socket. API errors come
 * back as TesseraError with the server's code and message; a socket that is not
 * there becomes an UNAVAILABLE error saying which path was tried.
 */
export class AdminClient {
  /** @param opts.checkDir check the socket's directory first (for a socket found by default) */
  constructor(
    readonly socketPath: string,
    private readonly opts: { checkDir?: boolean } = {},
  ) {}

  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, text } = await this.raw(method, path, body);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (status >= 400) {
      const err = (parsed as { error?: { code?: string; message?: string } })?.error;
      const code = (ERROR_CODES as readonly string[]).includes(err?.code ?? '') ? (err!.code as ErrorCode) : 'INTERNAL';
      throw new TesseraError(code, err?.message ?? `admin API answered ${status}`);
    }
    return parsed as T;
  }

  /** Raw text response (e.g. PEM bundles). */
  raw(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
    if (this.opts.checkDir) assertTrustedSocketDir(this.socketPath, 'admin socket');
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(
          new TesseraError(
            'UNAVAILABLE',
            `cannot reach the tessera server admin socket ${this.socketPath} (${e.code ?? e.message}); is the server running? set --admin-socket or TESSERA_ADMIN_SOCKET`,
          ),
        ),
      );
      req.end(payload);
    });
  }
}
