export type { Act, AttentionParams, Backend, BackendCounters, DeviceBytes, RopeParams, Weight } from './backend.ts';
export { combineCounters, zeroCounters } from './backend.ts';
export { KernelError, weightByteLength } from './layout.ts';
export { createCpuBackend } from './cpu/backend.ts';
export { createWebGpuBackend, defaultGemvShape, type WebGpuBackend } from './webgpu/backend.ts';
