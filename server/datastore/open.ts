import type { Logger } from 'pino';
import type { ServerConfig } from '../config';
import type { DataStore } from './datastore';
import { PostgresDataStore } from './postgres/store';
import { redactUrl } from './postgres/url';
import { SqliteDataStore } from './sqlite/store';

/** A store and what the server's /ready asks of it. */
export interface OpenedStore {
  store: DataStore;
  /** resolves while the database answers (SQLite: always) */
  ping: () => Promise<void>;
  /** for logs: the file, or the URL without its password */
  description: string;
  engine: 'sqlite' | 'postgres';
}

/** Opens the configured store: PostgreSQL when a URL is set, else the SQLite file. */
export async function openDataStore(config: ServerConfig, log: Logger, now: () => number): Promise<OpenedStore> {
  if (config.postgres) {
    const pg = config.postgres;
    const store = await PostgresDataStore.open({ ...pg, now, log });
    return { store, ping: () => store.ping(), description: redactUrl(pg.url), engine: 'postgres' };
  }
  const store = SqliteDataStore.open(config.datastorePath, { now, log });
  return { store, ping: async () => undefined, description: config.datastorePath, engine: 'sqlite' };
}
