import { ensureTrustedDir } from '../common/fs/trusted-dir';

/**
 * The directory `--write` writes into: created 0700 if missing; an existing one
 * must be this user's own (and its parents trusted), so keys never land where
 * another user can read or swap them. Files are written by writeFileAtomic:
 * a fresh exclusive temp file, mode set on the descriptor, renamed over the
 * target, so a planted file or symlink is replaced, never written through.
 */
export function outputDir(dir: string): string {
  return ensureTrustedDir(dir, { mode: 0o700, what: '--write directory', keepMode: true, ownOnly: true });
}
