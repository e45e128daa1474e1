export * from './types.ts';
export { blake3Hex, blake3Stream, isHash } from './hash.ts';
export { ManifestError, CheckpointError, ConfigError, ShardIntegrityError, ConvertError } from './errors.ts';
export { encodeManifest, decodeManifest, validateManifest } from './codec.ts';
export { quantize, dequantize, tensorByteLength, matrixDims } from './quant.ts';
export { f32ToF16Bits, f16BitsToF32 } from './f16.ts';
export { normaliseConfig } from './config.ts';
export { architectureTensors, storedDtype, type TensorSpec, type TensorRole } from './layout.ts';
export { MODEL_FILES, tensorByName, shardHashesOfExpert, summarize, type ModelSummary } from './query.ts';
