import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { failedPrecondition } from '../../common/errors';
import { readTrustedFile, writeFileAtomic } from '../../common/fs/private-file';

const FILE = 'instance-id';
const ID_RE = /^[0-9a-f-]{36}$/;

/**
 * This server's instance id, kept in `<data_dir>/instance-id` (created on the first
 * start, mode 0600). Several servers sharing one PostgreSQL database tell their CA
 * journal slots apart by it; each also has its own data_dir and key manager. A
 * copied data directory would make two servers one: give each its own.
 */
export async function loadInstanceId(dataDir: string): Promise<string> {
  const file = path.join(dataDir, FILE);
  const text = (await readTrustedFile(file, { what: 'server instance id file', private: false }))?.toString('utf8').trim();
  if (text !== undefined) {
    if (!ID_RE.test(text)) throw failedPrecondition(`${file} does not hold a server instance id; remove it to make a new one`);
    return text;
  }
  const id = randomUUID();
  await writeFileAtomic(file, `${id}\n`, 0o600);
  return id;
}
