import { Tokenizer } from '@huggingface/tokenizers';
import { chatTemplateSource, createChatTemplate, type ChatTemplate } from './chat-template.ts';
import { ModelLoadError } from './errors.ts';

/** Text ↔ ids with the model's own tokenizer.json (Hugging Face's maintained JS implementation). */
export interface TextCodec {
  encode(text: string): number[];
  decode(ids: number[]): string;
}

export function createTextCodec(tokenizerJson: Uint8Array, tokenizerConfigJson?: Uint8Array): TextCodec {
  const dec = new TextDecoder();
  const tok = new Tokenizer(JSON.parse(dec.decode(tokenizerJson)), tokenizerConfigJson ? JSON.parse(dec.decode(tokenizerConfigJson)) : {});
  return {
    // the golden prompts were encoded without special tokens; a caller that wants BOS passes it in the ids
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => tok.decode(ids, { skip_special_tokens: false }),
  };
}

/** The tokenizer files the engine reads (progress reports count these). */
export const TOKENIZER_FILES_READ = ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja'] as const;

/** The model's codec and chat template from its tokenizer blobs (either may be absent). */
export async function loadTokenizer(files: Record<string, string>, read: (hash: string) => Promise<Uint8Array>): Promise<{ codec: TextCodec | null; chatTemplate: ChatTemplate | null }> {
  const get = async (name: string) => (files[name] ? read(files[name]) : null);
  const [json, config, jinja] = await Promise.all(TOKENIZER_FILES_READ.map(get));
  const codec = json ? createTextCodec(json, config ?? undefined) : null;
  const dec = new TextDecoder();
  let cfg: Record<string, unknown> | null = null;
  if (config) {
    try {
      cfg = JSON.parse(dec.decode(config)) as Record<string, unknown>;
    } catch (err) {
      throw new ModelLoadError(`tokenizer_config.json is not JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  const source = chatTemplateSource(cfg, jinja ? dec.decode(jinja) : null);
  return { codec, chatTemplate: source === null ? null : createChatTemplate(source, cfg) };
}
