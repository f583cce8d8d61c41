import adversarialTeardown from '../adversarial/teardown';
import { stopOwnPostgres } from './postgres';

/** jest global teardown: the adversarial figures (which may fail the run), then the run's own PostgreSQL. */
export default function teardown(): void {
  try {
    adversarialTeardown();
  } finally {
    stopOwnPostgres();
  }
}
