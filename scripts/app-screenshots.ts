/**
 * Screenshots of the app for the README: one server seeding the demo model, a tab that loads it
 * from the swarm and chats (docs/app-chat.png), and the same tab after a reload, warm from OPFS
 * (docs/app-warm.png).
 *
 *   node_modules/.bin/node scripts/app-screenshots.ts
 */
import { join } from 'node:path';
import { buildApp } from '../app/build.ts';
import { startSignalServer } from '../signaling-server/node.ts';
import { chat, launch, waitLoaded } from '../tests/browser/app-helpers.ts';
import { ROOT } from '../tests/integration/swarm-helpers.ts';

const server = await startSignalServer({ port: 0, seeds: [join(ROOT, 'models/tiny-moe-text-q8_0')], appDir: await buildApp() });
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 940 } });
  await page.goto(`${server.httpUrl}/?model=${server.seeds[0]!.modelId}`);
  await waitLoaded(page);
  await chat(page, 'In the beginning', 40);
  await chat(page, '\nBlessed are the', 40);
  await page.waitForTimeout(1200);
  await page.screenshot({ path: join(ROOT, 'docs/app-chat.png'), fullPage: true });
  await page.reload();
  await waitLoaded(page);
  await chat(page, 'A computer is', 24);
  await page.waitForTimeout(1200);
  await page.screenshot({ path: join(ROOT, 'docs/app-warm.png'), fullPage: true });
} finally {
  await browser.close();
  await server.stop();
}
