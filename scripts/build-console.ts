import { build } from 'esbuild';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Builds the console's browser bundle (console/ui → dist/console/ui): one
 * minified script and one stylesheet, served by `tessera console` itself (no CDN,
 * nothing fetched at run time). esbuild because it bundles TSX and CSS in well
 * under a second with no plugin; type checking is `tsc -p console/ui` in the build.
 */
async function main(): Promise<void> {
  const root = path.resolve(__dirname, '..', '..');
  const out = path.join(root, 'dist', 'console', 'ui');
  mkdirSync(path.join(out, 'assets'), { recursive: true });
  await build({
    entryPoints: { app: path.join(root, 'console', 'ui', 'main.tsx') },
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['chrome110', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir: path.join(out, 'assets'),
    legalComments: 'none',
    logLevel: 'warning',
  });
  copyFileSync(path.join(root, 'console', 'ui', 'index.html'), path.join(out, 'index.html'));
  const kb = (f: string) => (statSync(path.join(out, 'assets', f)).size / 1024).toFixed(1);
  process.stdout.write(`console bundle: app.js ${kb('app.js')} kB, app.css ${kb('app.css')} kB\n`);
}

main().catch((e) => {
  process.stderr.write(`console build failed: ${(e as Error).message}\n`);
  process.exit(1);
});
