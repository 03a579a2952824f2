import { request } from 'node:http';
import { startStack } from './scripts/dev/stack';

const stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'dev', log: true, directSocket: true });
const url = new URL(`${stack.routerUrl}/v1/chat/completions`);
const h = { authorization: `Bearer ${stack.adminToken}` };
const count = async () => ((await (await fetch(`${stack.routerUrl}/admin/usage?group_by=tenant`, { headers: h })).json()) as any).rows[0]?.requests ?? 0;
function drop(body: object, ms: number) {
  return new Promise<void>((resolve) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: `Bearer ${stack.keys.demo}`, 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('close', () => resolve()); });
    req.on('error', () => resolve());
    req.end(JSON.stringify(body));
    setTimeout(() => (req.destroy(), resolve()), ms);
  });
}
for (const [name, body, ms] of [['stream-20ms', { model: 'large', stream: true, max_tokens: 400, messages: [{ role: 'user', content: 'x' }] }, 20]] as const) {
  const before = await count();
  await Promise.all(Array.from({ length: 2 }, () => drop(body, ms)));
  await new Promise((r) => setTimeout(r, 12000));
  console.log(name, (await count()) - before);
}
if (0) for (const [name, body, ms] of [['stream-20ms', { model: 'large', stream: true, max_tokens: 400, messages: [{ role: 'user', content: 'x' }] }, 20], ['nonstream-150ms', { model: 'large', max_tokens: 400, messages: [{ role: 'user', content: 'x' }] }, 150], ['nonstream-20ms', { model: 'large', max_tokens: 400, messages: [{ role: 'user', content: 'x' }] }, 20], ['stream-1ms', { model: 'large', stream: true, max_tokens: 400, messages: [{ role: 'user', content: 'x' }] }, 1]] as const) {
  const before = await count();
  await Promise.all(Array.from({ length: 10 }, () => drop(body, ms)));
  await new Promise((r) => setTimeout(r, 3000));
  console.log(name, (await count()) - before);
}
await stack.close();
