import { intFlag, numFlag, numberOption, parseCommandArgs, type Command } from '../command.ts';
import { untilInterrupted } from './swarm-options.ts';

const usage = `usage: doppler signal [--port P] [--host H] [--http-port P] [--key-file F]
                      [--max-reservations N] [--max-peer-bytes N] [--max-relay-s N]

Starts the signaling server: the libp2p node browsers and Node peers bootstrap from (WebSockets,
circuit-relay v2 for browser WebRTC set-up, and the model → peers directory). It stores no weights.
Prints the multiaddrs to pass as --signal, one per line, then serves until interrupted.
GET /health and /metrics (JSON: peers, reservations, relayed connections, bytes) on the HTTP port.

options:
  --port P               WebSockets port (default 9090; 0 picks a free one)
  --host H               listen address (default 127.0.0.1)
  --http-port P          health/metrics port (default port + 1; any free one when port is 0)
  --key-file F           keep the server's identity in F (created if absent), so its multiaddr is stable
  --max-reservations N   most relay reservations at once (default 128)
  --max-peer-bytes N     bytes one relayed connection may carry (default 1048576)
  --max-relay-s N        seconds one relayed connection may last (default 120)`;

export const command: Command = {
  name: 'signal',
  summary: 'run the signaling server (bootstrap, relay, peer directory)',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      port: intFlag(0, 65535), host: { type: 'string' }, 'http-port': intFlag(0, 65535), 'key-file': { type: 'string' },
      'max-reservations': intFlag(1), 'max-peer-bytes': intFlag(1), 'max-relay-s': numFlag(0.001),
    }, false);
    const { startSignalServer } = await import('../../signaling-server/node.ts');
    const port = numberOption(values.port, '--port');
    const httpPort = numberOption(values['http-port'], '--http-port');
    const maxReservations = numberOption(values['max-reservations'], '--max-reservations');
    const maxPeerBytes = numberOption(values['max-peer-bytes'], '--max-peer-bytes');
    const maxRelaySeconds = numberOption(values['max-relay-s'], '--max-relay-s');
    const server = await startSignalServer({
      ...(port !== undefined ? { port } : {}),
      ...(values.host ? { host: values.host } : {}),
      ...(httpPort !== undefined ? { httpPort } : {}),
      ...(values['key-file'] ? { keyFile: values['key-file'] } : {}),
      ...(maxReservations !== undefined ? { maxReservations } : {}),
      ...(maxPeerBytes !== undefined ? { maxPeerBytes } : {}),
      ...(maxRelaySeconds !== undefined ? { maxRelaySeconds } : {}),
    });
    for (const a of server.addrs) process.stdout.write(`${a}\n`);
    process.stderr.write(`signaling server ${server.node.peerId}: metrics at ${server.httpUrl}/metrics\n`);
    await untilInterrupted();
    await server.stop();
    return 0;
  },
};
