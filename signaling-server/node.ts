/** The signaling server is Node-only (HTTP endpoint, key file). */
export { startSignalServer, type SignalServer, type SignalServerOptions, type SignalMetrics } from './server.ts';
export { PeerRegistry } from './registry.ts';
