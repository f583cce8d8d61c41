import { describePostgres } from '../../helpers/postgres';

// The rotation end-to-end suite again (three rotations, SIGKILL after each step,
// taint and revoke), every server on PostgreSQL instead of SQLite.
describePostgres('on PostgreSQL', () => {
  process.env.TESSERA_TEST_DATASTORE = 'postgres';
  afterAll(() => void delete process.env.TESSERA_TEST_DATASTORE);
  require('../rotation.e2e.test');
});
