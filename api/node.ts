/** Node-only parts of the API: the OpenAI-compatible HTTP and WebSocket server. */
export { startApiServer, type ApiServer, type ApiServerOptions } from './server.ts';
export { ApiMetrics } from './metrics.ts';
