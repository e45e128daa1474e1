export { readModelDir, readShardFile, verifyModelDir, hashFile, type VerifyReport } from './model-dir.ts';
export { convert, DEFAULT_SHARD_MIB, TOKENIZER_FILES, type ConvertOptions, type ConvertResult } from './convert.ts';
export { synth, plannedManifestSize, PRESETS, type SynthOptions, type SynthResult } from './synth.ts';
export { Checkpoint, readHeader, type SafetensorsTensor } from './safetensors.ts';
export { progressBar } from './progress.ts';
export type { Progress } from './model-writer.ts';
export { openRegularFile, readRegularFile, NotRegularFileError } from './regular-file.ts';
