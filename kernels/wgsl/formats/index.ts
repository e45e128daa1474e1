/** The GPU side of every weight format, by name (one file each; manifests/formats/ is the storage side). */
import type { WeightDtype } from '../../../manifests/index.ts';
import { f16 } from './f16.ts';
import { f32 } from './f32.ts';
import type { GpuFormat } from './format.ts';
import { mxfp4 } from './mxfp4.ts';
import { q2_g32 } from './q2_g32.ts';
import { q3_g64 } from './q3_g64.ts';
import { q4_0 } from './q4_0.ts';
import { q8_0 } from './q8_0.ts';

export const GPU_FORMATS: { readonly [K in WeightDtype]: GpuFormat } = { f32, f16, q8_0, q4_0, mxfp4, q3_g64, q2_g32 };

export type { GemvUnit, GpuFormat } from './format.ts';
