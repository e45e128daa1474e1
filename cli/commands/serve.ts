import { OpenAiModel } from '../../api/index.ts';
import { startApiServer } from '../../api/node.ts';
import { ChatSession } from '../../engine/index.ts';
import { UsageError, intFlag, numberOption, parseCommandArgs, type Command } from '../command.ts';
import { BACKEND_HELP, backendOptions } from '../engine-setup.ts';
import { STORE_HELP, openCliModel, storeOptions } from '../model-source.ts';

const usage = `usage: doppler serve <model>... [--port N] [--host H] [--api-key K] [options]

Serves models over an OpenAI-compatible API:
  POST /v1/chat/completions, POST /v1/completions   (stream: true → server-sent events)
  GET  /v1/models
  GET  /v1/ws       the same streams over a WebSocket: send {"endpoint":"chat.completions",...body}
  GET  /health, /metrics (Prometheus)
Each model answers one request at a time; others wait in line (x-doppler-queue-position says
how many were ahead). A client that disconnects cancels its generation. Requests name a model by
its name (the manifest's) or its id.

options:
  --port N               default 8000 (0: any free port)
  --host H               default 127.0.0.1
  --api-key K            require "Authorization: Bearer K" (default: $DOPPLER_API_KEY; none: open)
  --context N            KV cache positions per model (default: the model's context, at most 4096)
${BACKEND_HELP}
${STORE_HELP}`;

const options = {
  port: intFlag(0, 65535),
  host: { type: 'string' },
  'api-key': { type: 'string' },
  context: intFlag(1),
  ...backendOptions,
  ...storeOptions,
} as const;

export const command: Command = {
  name: 'serve',
  summary: 'serve models over an OpenAI-compatible HTTP/WebSocket API',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    if (positionals.length === 0) throw new UsageError('name at least one model (a directory, or a model id with --source)');
    const context = numberOption(values.context, '--context');
    const opened = [];
    for (const m of positionals) opened.push(await openCliModel(m, values.backend, values));
    const models = opened.map((o) => new OpenAiModel(o.engine.manifest.name, new ChatSession(o.engine, context !== undefined ? { contextTokens: context } : {})));
    const apiKey = values['api-key'] ?? process.env.DOPPLER_API_KEY;
    const server = await startApiServer({
      models,
      port: numberOption(values.port, '--port') ?? 8000,
      host: values.host ?? '127.0.0.1',
      ...(apiKey ? { apiKey } : {}),
    });
    for (const m of models) {
      process.stderr.write(`model ${m.id} (${m.session.engine.modelId.slice(0, 16)}…): ${m.session.engine.chatTemplate ? 'chat template' : 'no chat template (completions only)'}, context ${m.session.contextTokens}\n`);
    }
    process.stdout.write(`listening on ${server.url}\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await server.close();
    for (const m of models) await m.session.close();
    for (const o of opened) await o.close();
    return 0;
  },
};
