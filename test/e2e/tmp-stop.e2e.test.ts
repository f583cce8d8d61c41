import { startServerProcess, removeDir } from '../helpers/processes';
jest.setTimeout(300_000);
it('stops promptly', async () => {
  const times: number[] = [];
  for (let i = 0; i < 12; i++) {
    const s = await startServerProcess({ config: { default_x509_svid_ttl: 10, agent_svid_ttl: 20 } });
    await new Promise((r) => setTimeout(r, 500 + Math.random() * 3000));
    const t = Date.now();
    const code = await Promise.race([s.stop(), new Promise((r) => setTimeout(() => r('timeout'), 15000))]);
    times.push(Date.now() - t);
    if (code === 'timeout') { process.stdout.write('HUNG; log tail:\n' + s.logs().split('\n').slice(-15).join('\n') + '\n'); s.proc.kill('SIGKILL'); }
    removeDir(s.dir);
  }
  process.stdout.write(`stop times ${times.join(', ')}\n`);
});
