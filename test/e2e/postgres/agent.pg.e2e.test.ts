import { describePostgres } from '../../helpers/postgres';

// The agent end-to-end suite again, every server on PostgreSQL instead of SQLite.
describePostgres('on PostgreSQL', () => {
  process.env.TESSERA_TEST_DATASTORE = 'postgres';
  afterAll(() => void delete process.env.TESSERA_TEST_DATASTORE);
  require('../agent.e2e.test');
});
