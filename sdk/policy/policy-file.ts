import { EventEmitter } from 'node:events';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from '../log';
import { PolicyEngine, PolicyError } from './engine';

export interface PolicyFileOptions {
  /** Cedar schema text; default the published TESSERA_SCHEMA */
  schema?: string;
  log?: Logger;
  /** how often the file is checked for changes, ms; default 500 */
  pollMs?: number;
}

/**
 * A Cedar policy file, loaded at start and reloaded when it changes. The file is
 * polled (`fs.watchFile`) rather than watched with inotify: editors and config
 * management replace files by rename, which an inotify watch on the old inode
 * misses. A file that does not parse or validate is refused with a message that
 * names the error and its line, and **the last good policy stays in force**.
 *
 * Events: `reload` (a new policy is in force), `error` (a change was refused).
 */
export class PolicyFile extends EventEmitter {
  private current: PolicyEngine;
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly opts: PolicyFileOptions,
  ) {
    super();
    this.current = this.parse(); // a bad file at start is an error: there is no last good policy
    watchFile(file, { interval: opts.pollMs ?? 500, persistent: false }, (now: Stats, before: Stats) => {
      if (this.closed || (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino)) return;
      this.reload();
    });
  }

  /**
   * Loads `file` and starts watching it.
   * @throws PolicyError when the file does not parse or validate (with the line)
   */
  static load(file: string, opts: PolicyFileOptions = {}): PolicyFile {
    return new PolicyFile(file, opts);
  }

  /** The policy in force. */
  engine(): PolicyEngine {
    return this.current;
  }

  /** Reads the file again; keeps the last good policy when the new one is refused. @returns whether the new one is in force */
  reload(): boolean {
    try {
      this.current = this.parse();
      this.opts.log?.info({ event: 'policy_reloaded', file: this.file, policies: this.current.size }, 'policy reloaded');
      this.emit('reload', this.current);
      return true;
    } catch (e) {
      const err = e as PolicyError;
      this.opts.log?.error(
        { event: 'policy_refused', file: this.file, line: err.line, error: err.message },
        'policy file refused; the last good policy stays in force',
      );
      if (this.listenerCount('error') > 0) this.emit('error', err);
      return false;
    }
  }

  close(): void {
    this.closed = true;
    unwatchFile(this.file);
  }

  private parse(): PolicyEngine {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      throw new PolicyError(`${this.file}: cannot read the policy file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    return PolicyEngine.fromText(text, { schema: this.opts.schema, source: this.file });
  }
}
