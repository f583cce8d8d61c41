import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** jest global setup: one directory where every worker records figures and logs (test/helpers/figures.ts). */
export default function setup(): void {
  process.env.TESSERA_FIGURES_DIR = mkdtempSync(path.join(os.tmpdir(), 'tessera-figures-'));
}
