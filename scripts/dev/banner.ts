/** What `npm start` prints once the stack answers: where it is and two ways to call it. */
export function banner(o: { routerUrl: string; keys: Record<string, string>; model: string; endpointsFile: string; mode: string }): string {
  const base = o.routerUrl.replace(/\/$/, '');
  const demo = o.keys.demo ?? Object.values(o.keys)[0] ?? '<api key>';
  const body = JSON.stringify({ model: o.model, messages: [{ role: 'user', content: 'Say hello in five words.' }], max_tokens: 32 });
  return `
edge-router is running (${o.mode}) at ${base}

API keys (tenant → key):
${Object.entries(o.keys).map(([t, k]) => `  ${t.padEnd(6)} ${k}`).join('\n')}
Admin token, keys and backend URLs: ${o.endpointsFile}

Try it:
  curl -s ${base}/v1/chat/completions \\
    -H 'Authorization: Bearer ${demo}' \\
    -H 'Content-Type: application/json' \\
    -d '${body}'

Or with the openai SDK (Node, ESM):
  import OpenAI from 'openai';
  const client = new OpenAI({ baseURL: '${base}/v1', apiKey: '${demo}' });
  const r = await client.chat.completions.create({ model: '${o.model}', messages: [{ role: 'user', content: 'Say hello in five words.' }] });
  console.log(r.choices[0].message.content);

Scale to zero (idle backends park, a request wakes them), in another terminal:
  npm run scale -- watch --router ${base} --admin-token "$(node -p "require('./.dev/endpoints.json').admin_token")" --interval 10
FinOps report of the month so far: npm run finops -- --router ${base} --admin-token …   (same token)
Runbooks: docs/runbooks/

Ctrl-C stops the router and the simulated backends.
`;
}
