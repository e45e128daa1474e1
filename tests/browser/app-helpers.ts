/** Drives the app page (app/) in Chromium for the app tests and bench: load, chat, read its state. */
import { chromium, type Browser, type Page } from 'playwright-core';
import type { TurnResult } from '../../app/protocol.ts';
import type { PageState } from '../../app/page-state.ts';
import { BASE_FLAGS, CHROMIUM, WEBGPU_FLAGS } from './harness.ts';

export const DEMO_ID_PROMPT = 'In the beginning';

/** Chromium with WebGPU on SwiftShader, or without WebGPU; `disable`: further features turned off. */
export function launch(webgpu = true, disable: string[] = []): Promise<Browser> {
  const off = [...(webgpu ? [] : ['WebGPU']), ...disable];
  return chromium.launch({ executablePath: CHROMIUM, args: [...BASE_FLAGS, ...(webgpu ? WEBGPU_FLAGS : []), ...(off.length ? [`--disable-features=${off.join(',')}`] : [])] });
}

export function pageState(page: Page): Promise<PageState> {
  return page.evaluate(() => (globalThis as unknown as { doppler: PageState }).doppler);
}

/** Waits until the page's model is ready (or failed) and returns its state. */
export async function waitLoaded(page: Page, timeoutMs = 240_000): Promise<PageState> {
  await page.waitForFunction(() => {
    const d = (globalThis as unknown as { doppler?: PageState }).doppler;
    return d !== undefined && (d.phase === 'ready' || d.phase === 'failed');
  }, null, { timeout: timeoutMs, polling: 200 });
  return pageState(page);
}

/** Types `prompt` into the chat box, presses Enter, and waits for the whole reply. */
export async function chat(page: Page, prompt: string, maxNew: number, whileRunning?: () => Promise<void>): Promise<TurnResult> {
  const before = (await pageState(page)).replies.length;
  await page.fill('#maxnew', String(maxNew));
  await page.fill('#temp', '0');
  await page.fill('#input', prompt);
  await page.press('#input', 'Enter');
  await whileRunning?.();
  await page.waitForFunction((n) => (globalThis as unknown as { doppler: PageState }).doppler.replies.length > n, before, { timeout: 240_000, polling: 200 });
  return (await pageState(page)).replies[before]!;
}
