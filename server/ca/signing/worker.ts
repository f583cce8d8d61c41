import { parentPort } from 'node:worker_threads';
import { TesseraError } from '../../../common/errors';
import { parseAndVerifyCSR } from '../../../common/x509svid/csr';
import { managedKeyFromPrivate } from '../../keymanager/base';
import { X509SVIDTemplate } from '../x509-leaf-template';
import type { SignJob, SignReply, SignResult } from './protocol';

/**
 * A signing worker thread: verifies CSRs and mints X.509-SVID leaves with the CA
 * keys the pool installs (the same code as the main thread's: parseAndVerifyCSR
 * and X509SVIDTemplate). It keeps the few authorities in use (active, and the
 * one before it during a rotation); the times come with each job.
 */
const MAX_AUTHORITIES = 4;
const templates = new Map<string, X509SVIDTemplate>();

function template(job: SignJob): X509SVIDTemplate {
  if (job.install) {
    const a = job.install;
    const key = managedKeyFromPrivate(a.keyId, a.keyType, a.key);
    templates.set(a.id, new X509SVIDTemplate({ caCertDer: Buffer.from(a.caCertDer), caKey: key }));
    while (templates.size > MAX_AUTHORITIES) templates.delete(templates.keys().next().value!);
  }
  const t = templates.get(job.authorityId);
  if (!t) throw new TesseraError('INTERNAL', `signing worker has no authority ${job.authorityId}`);
  return t;
}

function handle(job: SignJob): SignReply {
  const t = template(job);
  const notBefore = new Date(job.notBefore);
  const notAfter = new Date(job.notAfter);
  const results = job.items.map((it): SignResult => {
    try {
      const { publicKeySpki } = parseAndVerifyCSR(Buffer.from(it.csr));
      const { der, serialHex } = t.mint({ spiffeId: it.spiffeId, dnsNames: it.dnsNames, publicKeySpki, notBefore, notAfter });
      return { der, serialHex };
    } catch (e) {
      if (e instanceof TesseraError) return { error: { code: e.code, message: e.message } };
      return { error: { code: 'INTERNAL', message: 'signing failed' } };
    }
  });
  return { id: job.id, results };
}

parentPort!.on('message', (job: SignJob) => {
  let reply: SignReply;
  try {
    reply = handle(job);
  } catch (e) {
    const error = e instanceof TesseraError ? { code: e.code, message: e.message } : { code: 'INTERNAL' as const, message: 'signing failed' };
    reply = { id: job.id, results: job.items.map(() => ({ error })) };
  }
  parentPort!.postMessage(reply);
});
