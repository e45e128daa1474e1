/**
 * The OpenAI-compatible server under load: C clients each stream R text completions back to back
 * from `doppler serve`'s HTTP API on the demo model; requests/s, generated tokens/s, and per
 * request the time to the response headers (TTFB: they leave once the request's turn comes) and
 * to the first token. A one-client run of the same requests is the baseline. The server runs in
 * a child process (this script with --role server) so client timing does not share its event loop.
 *
 *   node_modules/.bin/node bench/serve.ts [--backend cpu|webgpu] [--clients 8] [--requests 3]
 *     [--max-tokens 32] [--model models/tiny-moe-text-q8_0] [--out bench/results/serve.json]
 *
 * Without --out it writes bench/results/serve.json and refuses to replace one that exists.
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { OpenAiModel } from '../api/index.ts';
import { startApiServer } from '../api/node.ts';
import { ChatSession } from '../engine/index.ts';
import { openModelAt } from '../engine/node.ts';
import { createCpuBackend, createWebGpuBackend } from '../kernels/index.ts';
import { benchArgs, invocation } from './invocation.ts';
import { intFlag } from '../cli/command.ts';

const { values } = benchArgs({
  role: { type: 'string', default: 'client' },
  backend: { type: 'string', default: 'cpu' },
  clients: { ...intFlag(1, 1024), default: '8' },
  requests: { ...intFlag(1), default: '3' },
  'max-tokens': { ...intFlag(1), default: '32' },
  model: { type: 'string', default: 'models/tiny-moe-text-q8_0' },
  out: { type: 'string' },
});

const PROMPTS = [
  'In the beginning', 'The Python interpreter', 'Blessed are the', 'A computer is',
  'And the LORD said unto Moses', 'To install the package', 'The function returns', 'And it came to pass',
];

if (values.role === 'server') {
  const backend = values.backend === 'webgpu' ? await createWebGpuBackend() : createCpuBackend();
  const { engine } = await openModelAt({ model: values.model!, backend, warmup: true });
  const server = await startApiServer({ models: [new OpenAiModel('demo', new ChatSession(engine))] });
  process.send!({ url: server.url, device: backend.name === 'cpu' ? 'cpu (TypeScript reference)' : (backend as { info?: { description?: string } }).info?.description ?? backend.name });
} else {
  await client();
}

interface Timing { ttfbMs: number; ttftMs: number; totalMs: number; tokens: number; queuePosition: number; queueWaitMs: number }

async function streamOne(url: string, prompt: string, maxTokens: number): Promise<Timing> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo', prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  const ttfbMs = performance.now() - t0;
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttftMs = 0;
  let tokens = 0;
  let buf = '';
  const dec = new TextDecoder();
  const reader = res.body.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    buf += dec.decode(r.value, { stream: true });
    const events = buf.split('\n\n');
    buf = events.pop()!;
    for (const e of events) {
      const data = e.replace(/^data: /, '');
      if (data === '[DONE]') continue;
      const chunk = JSON.parse(data) as { choices: { text: string }[]; usage?: { completion_tokens: number } };
      if (ttftMs === 0 && chunk.choices[0]?.text) ttftMs = performance.now() - t0;
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  return {
    ttfbMs, ttftMs, totalMs: performance.now() - t0, tokens,
    queuePosition: Number(res.headers.get('x-doppler-queue-position')), queueWaitMs: Number(res.headers.get('x-doppler-queue-wait-ms')),
  };
}

async function load(url: string, clients: number, perClient: number, maxTokens: number) {
  const t0 = performance.now();
  const timings = (await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const out: Timing[] = [];
    for (let r = 0; r < perClient; r++) out.push(await streamOne(url, PROMPTS[(c + r) % PROMPTS.length]!, maxTokens));
    return out;
  }))).flat();
  const wallS = (performance.now() - t0) / 1000;
  const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
  const ttfb = timings.map((t) => t.ttfbMs);
  const ttft = timings.map((t) => t.ttftMs);
  const tokens = timings.reduce((s, t) => s + t.tokens, 0);
  return {
    clients, requests: timings.length, wallS, requestsPerS: timings.length / wallS, completionTokensPerS: tokens / wallS,
    ttfbMs: { p50: q(ttfb, 0.5), p90: q(ttfb, 0.9), max: Math.max(...ttfb) },
    ttftMs: { p50: q(ttft, 0.5), p90: q(ttft, 0.9), max: Math.max(...ttft) },
    requestMs: { p50: q(timings.map((t) => t.totalMs), 0.5), max: Math.max(...timings.map((t) => t.totalMs)) },
    maxQueuePosition: Math.max(...timings.map((t) => t.queuePosition)),
  };
}

async function client(): Promise<void> {
  const out = values.out ?? 'bench/results/serve.json';
  if (!values.out && existsSync(out)) throw new Error(`${out} exists; pass --out to replace it`);
  const child = fork(process.argv[1]!, ['--role', 'server', '--backend', values.backend!, '--model', values.model!], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const { url, device } = await new Promise<{ url: string; device: string }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { url: string; device: string }));
      child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
    });
    const clients = Number(values.clients);
    const perClient = Number(values.requests);
    const maxTokens = Number(values['max-tokens']);
    const single = await load(url, 1, clients * perClient, maxTokens);
    const concurrent = await load(url, clients, perClient, maxTokens);
    const result = {
      bench: 'serve',
      command: invocation('serve.ts'),
      date: new Date().toISOString(),
      backend: values.backend,
      device,
      model: values.model,
      endpoint: 'POST /v1/completions, stream: true, temperature 0',
      maxTokens,
      note: 'one sequence at a time per model: concurrent requests queue; TTFB = response headers, sent when the request\'s turn comes',
      single,
      concurrent,
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    child.kill();
  }
}
