import { useState } from 'preact/hooks';
import { api, v1 } from '../api';
import { ErrorBox } from '../components';

type Result = { index: number; spiffe_id: string; ok: boolean; message: string };

/**
 * Bulk import from a JSON file: `{"entries": [...]}` (what `tessera entry list
 * --output json` and SPIRE's entry export write) or a bare array. Each item is
 * created on its own, so one bad item does not stop the rest; the report says
 * what happened to each, with the server's message for those refused.
 */
export function ImportPanel({ onDone }: { onDone: () => void }) {
  const [results, setResults] = useState<Result[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [progress, setProgress] = useState('');

  const run = async (file: File) => {
    setError(null);
    setResults(null);
    let items: unknown[];
    try {
      const doc = JSON.parse(await file.text()) as unknown;
      items = Array.isArray(doc) ? doc : ((doc as { entries?: unknown[] })?.entries ?? []);
      if (!Array.isArray(items) || items.length === 0) throw new Error('the file holds no entries: expected {"entries": [...]} or an array');
    } catch (e) {
      setError(new Error(`${file.name}: ${(e as Error).message}`));
      return;
    }
    const out: Result[] = [];
    let next = 0;
    // Four at a time: a 10,000-entry file takes seconds, and one refused item is reported, not fatal.
    const worker = async () => {
      while (next < items.length) {
        const index = next++;
        const raw = items[index] as Record<string, unknown>;
        // Fields the server sets are dropped so an export imports as it is.
        const { id: _id, revision: _r, created_at: _c, ...item } = (raw ?? {}) as Record<string, unknown>;
        try {
          await api('POST', v1('/entries'), { entries: [item] });
          out[index] = { index, spiffe_id: String(item.spiffe_id ?? ''), ok: true, message: 'created' };
        } catch (e) {
          out[index] = { index, spiffe_id: String(item.spiffe_id ?? ''), ok: false, message: (e as Error).message.replace(/^entries\.0\./, '') };
        }
        setProgress(`${out.filter(Boolean).length} of ${items.length}`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    setResults(out);
  };

  const ok = results?.filter((r) => r.ok).length ?? 0;
  return (
    <section aria-labelledby="h-import">
      <h1 id="h-import">Import entries</h1>
      <p>
        Choose a JSON file: <code>{'{"entries": [...]}'}</code> as <code>tessera entry list --output json</code> writes it, or an array of entries.
      </p>
      <label class="file">
        JSON file <input type="file" accept="application/json,.json" onChange={(e) => { const f = (e.target as HTMLInputElement).files?.[0]; if (f) void run(f); }} />
      </label>
      {progress && !results && <p role="status">Importing… {progress}</p>}
      <ErrorBox error={error} />
      {results && (
        <>
          <p role="status" data-testid="import-summary">
            {ok} created, {results.length - ok} refused.
          </p>
          <div class="table-wrap">
            <table data-testid="import-report">
              <thead>
                <tr>
                  <th>#</th>
                  <th>SPIFFE ID</th>
                  <th>Result</th>
                </tr>
              </thead>
              <tbody>
                {results.map((r) => (
                  <tr key={r.index} class={r.ok ? '' : 'row-error'}>
                    <td>{r.index + 1}</td>
                    <td>
                      <code>{r.spiffe_id}</code>
                    </td>
                    <td>{r.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      <div class="actions">
        <button type="button" onClick={onDone}>
          Back to entries
        </button>
      </div>
    </section>
  );
}
