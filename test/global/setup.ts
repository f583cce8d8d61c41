import adversarialSetup from '../adversarial/setup';
import { startPostgresIfNeeded } from './postgres';

/** jest global setup: the adversarial figures' directory, and PostgreSQL when the run has none. */
export default function setup(): void {
  adversarialSetup();
  startPostgresIfNeeded();
}
