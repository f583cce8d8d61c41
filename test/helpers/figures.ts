import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The adversarial suite's figures. Every test that attacks the real processes
 * records what it tried here; jest's global teardown (test/adversarial/teardown.ts)
 * adds them up across the test files and prints one figure a line,
 * `adversarial <name> <value>`. The directory comes from the global setup
 * (TESSERA_FIGURES_DIR), so figures from every jest worker meet in one place.
 * Outside jest's global setup nothing is recorded.
 */
const dir = (): string | undefined => process.env.TESSERA_FIGURES_DIR || undefined;

/** How the teardown combines a figure recorded more than once. */
export type Aggregate = 'sum' | 'max';

/** Records one figure; counts add up, latencies keep the worst. */
export function figure(name: string, value: number, agg: Aggregate = 'sum'): void {
  const d = dir();
  if (!d) return;
  appendFileSync(path.join(d, `figures-${process.pid}.jsonl`), JSON.stringify({ name, value, agg }) + '\n');
}

/**
 * One impersonation attempt of `category`: `attack` performs it against the real
 * processes and resolves true when it was refused as it should be. Records
 * `<category>_tried` and `<category>_refused`, and returns the outcome so the
 * test asserts it too (a refusal that did not happen fails the test as well as
 * showing in the figures).
 */
export async function attempt(category: string, attack: () => Promise<boolean>): Promise<boolean> {
  let refused = false;
  try {
    refused = await attack();
  } finally {
    figure(`${category}_tried`, 1);
    figure(`${category}_refused`, refused ? 1 : 0);
  }
  return refused;
}

/**
 * For a test that checks its refusal with expect(): records `<category>_tried`
 * now; call the returned function once the expectations of the refusal have
 * passed, to record `<category>_refused`. An expectation that fails leaves the
 * attempt tried and not refused.
 */
export function tried(category: string): () => void {
  figure(`${category}_tried`, 1);
  return () => figure(`${category}_refused`, 1);
}

/** p99 of a list of latencies (ms), nearest rank. */
export function p99(ms: number[]): number {
  if (ms.length === 0) return 0;
  const sorted = [...ms].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)]!;
}

/**
 * Hands a process's whole log to the secrets scan of the teardown (private keys,
 * join tokens and JWTs found must be 0 over every log line the suite wrote).
 */
export function scanLog(name: string, text: string): void {
  const d = dir();
  if (!d || !text) return;
  mkdirSync(path.join(d, 'logs'), { recursive: true });
  writeFileSync(path.join(d, 'logs', `${name}-${process.pid}-${Math.random().toString(36).slice(2)}.log`), text);
}

/** A secret the suite handed out (a join token): the scan looks for it verbatim in every log. */
export function knownSecret(secret: string): void {
  const d = dir();
  if (!d || !secret) return;
  appendFileSync(path.join(d, `secrets-${process.pid}.txt`), secret + '\n');
}
