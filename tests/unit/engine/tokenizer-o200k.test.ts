/**
 * gpt-oss ships an o200k-style tokenizer.json (byte-level BPE behind tiktoken's o200k split regex,
 * with its `(?i:'s|…)` inline flag groups, and the harmony special tokens above the vocabulary).
 * A tokenizer.json of that exact shape, with a small vocabulary, loads through createTextCodec and
 * splits, merges and decodes as the regex says.
 */
import { describe, expect, it } from 'vitest';
import { createTextCodec } from '../../../engine/tokenizer.ts';

const O200K_SPLIT = [
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
  '\\p{N}{1,3}',
  ' ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*',
  '\\s*[\\r\\n]+',
  '\\s+(?!\\S)',
  '\\s+',
].join('|');

/** GPT-2's byte → printable character table, which byte-level BPE vocabularies are written in. */
function byteChars(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return out;
}

const HARMONY = { '<|start|>': 200006, '<|end|>': 200007, '<|message|>': 200008, '<|channel|>': 200005, '<|return|>': 200002 };

function tokenizerJson(merges: [string, string][]): Uint8Array {
  const chars = byteChars();
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => (vocab[c] = i));
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: Object.entries(HARMONY).map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: O200K_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
  return new TextEncoder().encode(JSON.stringify(json));
}

describe('o200k-style tokenizer.json (gpt-oss)', () => {
  const G = byteChars()[32]!; // the byte-level spelling of a space
  // merges that only apply when the split regex keeps their bytes in one piece
  const merges: [string, string][] = [['O', "'"], ["O'", 'S'], ['3', '4'], [G, 'w'], ['1', '2']];
  const codec = createTextCodec(tokenizerJson(merges));
  const id = (piece: string): number => 256 + merges.findIndex(([a, b]) => a + b === piece);

  it('keeps a case-insensitive contraction with its word, numbers in runs of three, and a space with the next word', () => {
    // "HELLO'S": the second alternative with (?i:'s) takes 'S into the word, so O' and O'S merge
    expect(codec.encode("HELLO'S")).toEqual([...codec.encode('HELL'), id("O'S")]);
    // "12345" splits as 123 | 45, so the 3-4 merge never applies, 1-2 does
    expect(codec.encode('12345')).toEqual([id('12'), ...codec.encode('3'), ...codec.encode('45')]);
    expect(codec.encode(' world')).toEqual([id(`${G}w`), ...codec.encode('orld')]);
  });

  it('maps the harmony special tokens to their ids and round-trips text', () => {
    const text = "<|start|>user<|message|>What's 12345 × 2?\n<|end|><|start|>assistant<|channel|>final<|message|>HELLO'S<|return|>";
    const ids = codec.encode(text);
    for (const n of Object.values(HARMONY)) expect(ids).toContain(n);
    expect(ids.indexOf(HARMONY['<|start|>'])).toBe(0);
    expect(codec.decode(ids)).toBe(text);
  });
});
