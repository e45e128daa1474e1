import { readFile } from 'node:fs/promises';
import { intFlag, numFlag, numberOption, parseCommandArgs, UsageError, type Command } from '../command.ts';
import { untilInterrupted } from './swarm-options.ts';

const usage = `usage: doppler signal [--port P] [--host H] [--seed <model-dir>]… [options]

Starts the Doppler server on one port: the app page (open the printed URL in a browser), the
libp2p node browsers and Node peers bootstrap from (WebSockets, circuit-relay v2 for browser WebRTC
set-up, the model → peers directory), and — with --seed — the models it serves itself.
Prints the multiaddrs to pass as --signal, one per line, then the page URL on stderr.
GET /health, /metrics (Prometheus), /metrics.json, /api/config, /api/models.

options:
  --port P               the one public port (default 9090; 0 picks a free one)
  --host H               listen address (default 127.0.0.1; 0.0.0.0 for every interface)
  --seed DIR             seed this converted model directory (repeatable); every shard is verified first
  --tls-cert F --tls-key F   serve https and wss with this PEM certificate and key
  --announce MULTIADDR   public address without /p2p, e.g. /dns4/example.org/tcp/443/wss (repeatable)
  --ice-servers F        JSON file: an array of RTCIceServer ({urls, username?, credential?}) handed to pages
  --max-conn-per-ip N    WebSocket connections one IP address may hold (default 32)
  --no-app               do not serve the page (signaling only)
  --key-file F           keep the server's identity in F (created if absent), so its multiaddr is stable
  --max-reservations N   most relay reservations at once (default 128)
  --max-peer-bytes N     bytes one relayed connection may carry (default 1048576)
  --max-relay-s N        seconds one relayed connection may last (default 120)`;

export const command: Command = {
  name: 'signal',
  summary: 'run the server: app page, signaling/relay, and seeded models on one port',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      port: intFlag(0, 65535), host: { type: 'string' }, 'key-file': { type: 'string' },
      seed: { type: 'string', multiple: true }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
      announce: { type: 'string', multiple: true }, 'ice-servers': { type: 'string' }, 'max-conn-per-ip': intFlag(1),
      'no-app': { type: 'boolean' },
      'max-reservations': intFlag(1), 'max-peer-bytes': intFlag(1), 'max-relay-s': numFlag(0.001),
    }, false);
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
    for (const a of values.announce ?? []) {
      if (!a.startsWith('/') || a.includes('/p2p/')) throw new UsageError(`--announce expects a multiaddr without /p2p, got "${a}"`);
    }
    const { startSignalServer } = await import('../../signaling-server/node.ts');
    const num = (name: 'port' | 'max-conn-per-ip' | 'max-reservations' | 'max-peer-bytes' | 'max-relay-s') => numberOption(values[name], `--${name}`);
    const tls = values['tls-cert'] ? { cert: await readFile(values['tls-cert']), key: await readFile(values['tls-key']!) } : undefined;
    const iceServers = values['ice-servers'] ? parseIceServers(await readFile(values['ice-servers'], 'utf8'), values['ice-servers']) : undefined;
    let appDir: string | undefined;
    if (!values['no-app']) {
      const { buildApp } = await import('../../app/build.ts');
      appDir = await buildApp(undefined, (l) => process.stderr.write(`${l}\n`));
    }
    const port = num('port');
    const perIp = num('max-conn-per-ip');
    const reservations = num('max-reservations');
    const peerBytes = num('max-peer-bytes');
    const relaySeconds = num('max-relay-s');
    const server = await startSignalServer({
      ...(port !== undefined ? { port } : {}),
      ...(values.host ? { host: values.host } : {}),
      ...(values['key-file'] ? { keyFile: values['key-file'] } : {}),
      ...(values.seed ? { seeds: values.seed } : {}),
      ...(tls ? { tls } : {}),
      ...(values.announce ? { announce: values.announce } : {}),
      ...(iceServers ? { iceServers } : {}),
      ...(appDir ? { appDir } : {}),
      ...(perIp !== undefined ? { maxConnectionsPerIp: perIp } : {}),
      ...(reservations !== undefined ? { maxReservations: reservations } : {}),
      ...(peerBytes !== undefined ? { maxPeerBytes: peerBytes } : {}),
      ...(relaySeconds !== undefined ? { maxRelaySeconds: relaySeconds } : {}),
    });
    for (const a of server.addrs) process.stdout.write(`${a}\n`);
    for (const s of server.seeds) process.stderr.write(`seeding ${s.info.name} (${s.modelId}) from ${s.dir}\n`);
    process.stderr.write(`signaling server ${server.node.peerId}: metrics at ${server.httpUrl}/metrics\n`);
    if (appDir) process.stderr.write(`open ${server.httpUrl}/ in a browser\n`);
    await untilInterrupted();
    await server.stop();
    return 0;
  },
};

function parseIceServers(text: string, file: string): { urls: string | string[]; username?: string; credential?: string }[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--ice-servers ${file}: not JSON (${(err as Error).message})`);
  }
  const ok = Array.isArray(v) && v.every((s) => typeof s === 'object' && s !== null && (typeof s.urls === 'string' || (Array.isArray(s.urls) && s.urls.every((u: unknown) => typeof u === 'string'))));
  if (!ok) throw new UsageError(`--ice-servers ${file}: expected an array of {urls, username?, credential?}`);
  return v as { urls: string | string[]; username?: string; credential?: string }[];
}
