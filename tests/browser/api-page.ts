/** Page entry for the in-tab API test: createEngine over HTTP, then an OpenAI-shaped streamed chat. */
import { createEngine } from '../../api/index.ts';

async function chat(modelUrl: string, maxTokens: number) {
  const stages: string[] = [];
  const engine = await createEngine({ model: modelUrl, onProgress: (p) => stages.push(p.stage) });
  let content = '';
  let finish: string | null = null;
  const chunks = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'In the beginning' }], max_tokens: maxTokens, temperature: 0, stream: true });
  for await (const c of chunks) {
    content += c.choices[0]?.delta.content ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  const backend = engine.backend;
  await engine.unload();
  return { content, finish, backend, stages: [...new Set(stages)] };
}

Object.assign(globalThis, { dopplerApiChat: chat });
