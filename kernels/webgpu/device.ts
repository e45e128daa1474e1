/** Getting a GPUDevice in a browser (navigator.gpu) or in Node (the `webgpu` package, Dawn). */
import { KernelError } from '../layout.ts';

export interface DeviceInfo {
  device: GPUDevice;
  /** Features this backend may use (those the device was created with). */
  subgroups: boolean;
  timestamps: boolean;
  description: string;
  /** A CPU implementation (SwiftShader or another fallback adapter). */
  software: boolean;
  /** The subgroup size when `subgroups` is on and the adapter reports one fixed size, else null. */
  subgroupSize: number | null;
}

// A variable module name keeps browser bundlers (vite, esbuild) from pulling the Node binding in.
const NODE_WEBGPU = 'webgpu';

/**
 * Dawn's instance in Node. Held for the life of the process: when the GPU object is collected,
 * Dawn tears its instance down under devices still in use, and the process crashes later.
 */
let nodeGpu: GPU | undefined;

/** Vulkan drivers on a Linux machine, and the software one Debian's Chromium ships. */
const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const NODE_FS = 'node:fs';

/**
 * Without a GPU driver the Vulkan loader finds nothing and Dawn has no adapter. When nobody chose
 * a driver and none is installed, point the loader at SwiftShader (must happen before Dawn starts).
 */
async function chooseSoftwareVulkanIfNoDriver(): Promise<void> {
  const env = (globalThis as { process?: { env: Record<string, string | undefined>; platform?: string } }).process;
  if (!env || env.platform !== 'linux' || env.env.VK_ICD_FILENAMES || env.env.VK_DRIVER_FILES) return;
  const fs = (await import(/* @vite-ignore */ NODE_FS)) as typeof import('node:fs');
  const hasDriver = ICD_DIRS.some((d) => {
    try {
      return fs.readdirSync(d).some((f) => f.endsWith('.json'));
    } catch {
      return false;
    }
  });
  if (!hasDriver && fs.existsSync(SWIFTSHADER_ICD)) env.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
}

async function gpuEntry(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  try {
    if (nodeGpu) return nodeGpu;
    await chooseSoftwareVulkanIfNoDriver();
    const mod = (await import(/* @vite-ignore */ NODE_WEBGPU)) as { create(flags: string[]): GPU };
    // Dawn rounds timestamps to 100 µs by default (a browser anti-fingerprinting measure); a native
    // process has no use for that and the kernel benchmark needs real ones.
    nodeGpu = mod.create(['disable-dawn-features=timestamp_quantization']);
    return nodeGpu;
  } catch (err) {
    throw new KernelError('no WebGPU: navigator.gpu is absent and the Node package "webgpu" could not be loaded', { cause: err });
  }
}

export async function acquireDevice(): Promise<DeviceInfo> {
  const gpu = await gpuEntry();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new KernelError('WebGPU has no adapter (no GPU and no software fallback such as SwiftShader)');
  const features: GPUFeatureName[] = [];
  for (const f of ['subgroups', 'timestamp-query'] as const) if (adapter.features.has(f)) features.push(f);
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  const info = adapter.info;
  const description = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' / ') || 'unknown adapter';
  const software = /swiftshader|llvmpipe|lavapipe/i.test(description) || (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const subgroups = features.includes('subgroups');
  const sgMin = info.subgroupMinSize;
  const subgroupSize = subgroups && sgMin !== undefined && sgMin === info.subgroupMaxSize && sgMin >= 2 ? sgMin : null;
  return { device, subgroups, timestamps: features.includes('timestamp-query'), description, software, subgroupSize };
}
