import { runKeyManagerContract } from './contract';
import { MemoryKeyManager } from './memory';

runKeyManagerContract('memory', async () => ({ km: new MemoryKeyManager(), cleanup: async () => undefined }));
