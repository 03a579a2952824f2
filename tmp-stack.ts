import { writeFileSync } from 'node:fs';
import { startStack } from './scripts/dev/stack';
const stack = await startStack({ port: 24817, ephemeralBackends: true, persist: false, simProfile: 'dev' });
writeFileSync('/tmp/i14gate-stack.env', `export ROUTER_URL=${stack.routerUrl}\nexport ROUTER_ADMIN_TOKEN=${stack.adminToken}\nexport ROUTER_KEY=${stack.keys.demo}\n`);
console.log('ready', stack.routerUrl);
process.on('SIGTERM', async () => { await stack.close(); process.exit(0); });
setInterval(() => {}, 1 << 30);
