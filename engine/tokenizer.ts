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

/**
 * Text of a growing list of ids, as deltas. Decoding restarts after each emitted newline (as
 * transformers' TextStreamer does), so the text of a long generation is not re-decoded from its
 * first token at every step.
 */
export class TextStream {
  private readonly ids: number[] = [];
  private lineStart = 0;
  private shown = '';
  private readonly codec: TextCodec | null;
  constructor(codec: TextCodec | null) {
    this.codec = codec;
  }

  push(id: number): string {
    this.ids.push(id);
    if (!this.codec) return '';
    const text = this.codec.decode(this.ids.slice(this.lineStart));
    // a token that ends inside a multi-byte character decodes to U+FFFD until the rest arrives
    if (text.endsWith('\uFFFD')) return '';
    const delta = text.slice(this.shown.length);
    if (text.endsWith('\n')) {
      this.lineStart = this.ids.length;
      this.shown = '';
    } else {
      this.shown = text;
    }
    return delta;
  }
}
