/**
 * A test model with a chat template: the demo model's weights and tokenizer (tiny-moe-text at
 * q8_0) plus a small ChatML-style `chat_template.jinja` written around its own special tokens.
 */
import { copyFile, mkdtemp, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convert } from '../../manifests/node.ts';

export const TINY_MOE_TEXT = fileURLToPath(new URL('../../../shared/fixtures/tiny-moe-text', import.meta.url));

export const CHAT_TEMPLATE = `{%- for m in messages -%}
{{ bos_token }}{{ m.role }}
{{ m.content }}{{ eos_token }}
{% endfor -%}
{%- if add_generation_prompt -%}
{{ bos_token }}assistant
{% endif -%}`;

/** Converts tiny-moe-text with CHAT_TEMPLATE into a new temporary model directory. */
export async function makeChatModel(): Promise<{ dir: string; id: string; root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'doppler-chat-model-'));
  const src = join(root, 'hf');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(src);
  for (const f of await readdir(TINY_MOE_TEXT)) {
    if (f.endsWith('.safetensors')) await symlink(join(TINY_MOE_TEXT, f), join(src, f));
    else await copyFile(join(TINY_MOE_TEXT, f), join(src, f));
  }
  await writeFile(join(src, 'chat_template.jinja'), CHAT_TEMPLATE);
  const dir = join(root, 'model');
  const r = await convert({ source: src, out: dir, quant: 'q8_0', name: 'tiny-moe-text-chat' });
  return { dir, id: r.id, root };
}
