import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { api, loadSession, v1 } from './api';
import { ErrorBox } from './components';
import { OverviewPage } from './pages/overview';
import { EntriesPage } from './pages/entries';
import { AgentsPage } from './pages/agents';
import { AuthoritiesPage } from './pages/authorities';
import { FederationPage } from './pages/federation';
import { AuditPage } from './pages/audit';

const PAGES = [
  ['overview', 'Overview'],
  ['entries', 'Entries'],
  ['agents', 'Agents'],
  ['authorities', 'Authorities'],
  ['federation', 'Federation'],
  ['audit', 'Audit'],
] as const;
type Page = (typeof PAGES)[number][0];

const pageOf = (hash: string): Page => {
  const p = hash.replace(/^#\/?/, '') as Page;
  return PAGES.some(([k]) => k === p) ? p : 'overview';
};

function App() {
  const [page, setPage] = useState<Page>(pageOf(location.hash));
  const [td, setTd] = useState('');
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const on = () => setPage(pageOf(location.hash));
    window.addEventListener('hashchange', on);
    loadSession()
      .then(() => api<{ trust_domain: string }>('GET', v1('/health')))
      .then((h) => setTd(h.trust_domain), setError);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  useEffect(() => {
    document.title = `${PAGES.find(([k]) => k === page)![1]} · Tessera console`;
    document.getElementById('main')?.focus();
  }, [page]);
  const logout = async () => {
    await api('POST', '/api/logout');
    location.reload();
  };
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Tessera</span>
        {td && <code class="td">{td}</code>}
        <nav aria-label="pages">
          {PAGES.map(([k, label]) => (
            <a key={k} href={`#/${k}`} aria-current={page === k ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <button type="button" class="link" onClick={() => void logout()}>
          Log out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <ErrorBox error={error} />
        {!td && !error ? (
          <p class="loading">Loading…</p>
        ) : (
          td &&
          {
            overview: <OverviewPage />,
            entries: <EntriesPage trustDomain={td} />,
            agents: <AgentsPage />,
            authorities: <AuthoritiesPage />,
            federation: <FederationPage />,
            audit: <AuditPage />,
          }[page]
        )}
      </main>
    </>
  );
}

// The static "Loading…" placeholder goes first: Preact's render appends beside DOM it did not make.
const root = document.getElementById('app')!;
root.textContent = '';
render(<App />, root);
