import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

/** The server's own message, readable, announced to screen readers. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as Error;
  const code = error instanceof ApiError ? error.code : 'ERROR';
  return (
    <div class="error" role="alert">
      <strong>{code}</strong> {e.message}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/**
 * A confirmation in a modal <dialog>: focus moves into it, Escape cancels, and
 * the confirm button says what it does. `run` errors are shown inside it.
 */
export function Confirm(p: {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  /** false: the action is refused; the dialog only explains */
  allowed?: boolean;
  onClose: () => void;
  run: () => Promise<unknown>;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const d = ref.current!;
    if (!d.open) d.showModal();
    const cancel = () => p.onClose();
    d.addEventListener('close', cancel);
    return () => d.removeEventListener('close', cancel);
  }, []);
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      await p.run();
      ref.current?.close();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" class="confirm">
      <h2 id="confirm-title">{p.title}</h2>
      <div class="confirm-body">{p.children}</div>
      <ErrorBox error={error} />
      <div class="actions">
        <button type="button" onClick={() => ref.current?.close()}>
          Cancel
        </button>
        {p.allowed !== false && (
          <button type="button" class={p.danger ? 'danger' : 'primary'} disabled={busy} onClick={go}>
            {busy ? 'Working…' : p.confirmLabel}
          </button>
        )}
      </div>
    </dialog>
  );
}

/** Loads `load()` on mount and whenever `deps` change; `reload` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): { data?: T; error: unknown; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error: unknown; loading: boolean }>({ error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function Stat({ label, value, hint }: { label: string; value: ComponentChildren; hint?: ComponentChildren }) {
  return (
    <div class="stat">
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value}</div>
      {hint && <div class="stat-hint">{hint}</div>}
    </div>
  );
}

/** Paging by the admin API's page tokens: the current token and the tokens of the pages before it. */
export function usePager() {
  const [before, setBefore] = useState<string[]>([]);
  const [token, setToken] = useState<string | undefined>(undefined);
  return {
    token,
    page: before.length + 1,
    reset: () => {
      setBefore([]);
      setToken(undefined);
    },
    back: () => {
      const t = [...before];
      const prev = t.pop();
      setBefore(t);
      setToken(prev || undefined);
    },
    next: (nextToken: string) => {
      setBefore([...before, token ?? '']);
      setToken(nextToken);
    },
    hasPrevious: before.length > 0,
  };
}

export function Pager({ pager, nextToken }: { pager: ReturnType<typeof usePager>; nextToken: string | null | undefined }) {
  return (
    <nav class="pager" aria-label="pages">
      <button type="button" disabled={!pager.hasPrevious} onClick={pager.back}>
        ← Previous
      </button>
      <span class="muted">page {pager.page}</span>
      <button type="button" disabled={!nextToken} onClick={() => nextToken && pager.next(nextToken)}>
        Next →
      </button>
    </nav>
  );
}

export function SelectorChips({ selectors }: { selectors: Array<{ type: string; value: string }> }) {
  return (
    <>
      {selectors.map((s) => (
        <span class="chip" key={`${s.type}:${s.value}`}>
          {s.type}:{s.value}
        </span>
      ))}
    </>
  );
}
