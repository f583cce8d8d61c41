/** Human output by default, `--output json` for scripts (SPIRE's -output json). */
export type OutputFormat = 'pretty' | 'json';

export interface Out {
  format: OutputFormat;
  write(s: string): void;
}

export const stdoutOut = (format: OutputFormat): Out => ({ format, write: (s) => process.stdout.write(s) });

/** Aligned "Key : value" lines, as spire-server prints entries. */
export function kv(rows: Array<[string, string | number | null | undefined]>): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k.padEnd(w)} : ${v ?? ''}`)
    .join('\n');
}

export function json(out: Out, v: unknown): void {
  out.write(JSON.stringify(v, null, 2) + '\n');
}

export const ts = (unix: number | null | undefined) => (unix ? new Date(unix * 1000).toISOString() : 'never');
