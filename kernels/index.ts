export type { Act, AttentionParams, Backend, DeviceBytes, RopeParams, Weight } from './backend.ts';
export { KernelError, weightByteLength } from './layout.ts';
export { createCpuBackend } from './cpu/backend.ts';
export { createWebGpuBackend, defaultGemvShape, type WebGpuBackend } from './webgpu/backend.ts';
export { createWasmBackend, type WasmBackend, type WasmBackendOptions, type WasmThreading } from './wasm/backend.ts';
export { pickBackend, probeGemv, type BackendCandidate, type BackendPick, type BackendTrial } from './pick.ts';
