import { groupGpuFormat } from './group.ts';

export const q3_g64 = groupGpuFormat(3, 64);
