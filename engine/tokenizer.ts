import { Tokenizer } from '@huggingface/tokenizers';

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
