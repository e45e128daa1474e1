#!/usr/bin/env node
// Doppler's scripts need Node >= 22 (libp2p 3, native TypeScript). The machines ship older Node, so
// when started by one, hand over to the runtime the project installs (the `node` devDependency).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  const ownNode = fileURLToPath(new URL('../node_modules/.bin/node', import.meta.url));
  if (!existsSync(ownNode)) {
    console.error(`doppler: needs Node >= 22 (this is ${process.version}); run npm install first`);
    process.exit(1);
  }
  const r = spawnSync(ownNode, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
