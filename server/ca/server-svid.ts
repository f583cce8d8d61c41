import { generateKeyPair as generateKeyPairCb, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { F } from '../../common/log';
import { derToPem } from '../../common/pem';
import type { CAManager } from './ca-manager';

const generateKeyPair = promisify(generateKeyPairCb);

/** The server's own TLS identity for the agent API (and an https_spiffe bundle endpoint). */
export interface ServerTLS {
  key: KeyObject;
  /** PEM chain of the server's X.509-SVID */
  cert: string;
  /** PEM roots agents' client certificates are checked against: the whole bundle */
  ca: string[];
  expiresAt: number;
}

/**
 * The server's X.509-SVID (`spiffe://<td>/tessera/server`): minted by its own CA on a
 * fresh P-256 key at start, again at half its life, and whenever the bundle changes
 * (a new CA, another server's key: the client-certificate roots must follow).
 * `onRotate` installs the new one (the agent API's secure context, the bundle endpoint).
 */
export class ServerSVID {
  private tls!: ServerTLS;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private unsubscribe?: () => void;

  private constructor(
    private readonly d: { ca: CAManager; spiffeId: string; ttl: number; now: () => number; log: Logger; onRotate: (tls: ServerTLS) => void },
  ) {}

  static async start(d: ServerSVID['d']): Promise<ServerSVID> {
    const s = new ServerSVID(d);
    s.tls = await s.mint();
    s.schedule();
    s.unsubscribe = d.ca.onBundleChange(() => void s.rotate().catch((err) => d.log.error({ err }, 'server svid rotation failed')));
    return s;
  }

  current(): ServerTLS {
    return this.tls;
  }

  async rotate(): Promise<void> {
    if (this.stopped) return;
    this.tls = await this.mint();
    this.d.onRotate(this.tls);
    this.d.log.info({ [F.expiresAt]: this.tls.expiresAt }, 'server svid rotated');
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.unsubscribe?.();
  }

  private async mint(): Promise<ServerTLS> {
    const { privateKey, publicKey } = await generateKeyPair('ec', { namedCurve: 'P-256' });
    const spki = (publicKey as KeyObject).export({ format: 'der', type: 'spki' });
    const svid = this.d.ca.mintX509SVID({ spiffeId: this.d.spiffeId, publicKeySpki: spki, ttl: this.d.ttl });
    return {
      key: privateKey as KeyObject,
      cert: svid.chain.map((c) => derToPem(c)).join(''),
      ca: this.d.ca.bundle().x509Authorities.map((c) => derToPem(c)),
      expiresAt: svid.expiresAt,
    };
  }

  /** At half the remaining life (at least a second), then again after each rotation. */
  private schedule(): void {
    if (this.stopped) return;
    const ms = Math.max(1000, ((this.tls.expiresAt - this.d.now()) * 1000) / 2);
    this.timer = setTimeout(
      () =>
        void this.rotate().then(
          () => this.schedule(),
          (err) => {
            this.d.log.error({ err }, 'server svid rotation failed');
            this.schedule();
          },
        ),
      ms,
    );
    this.timer.unref();
  }
}
