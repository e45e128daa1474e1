import { groupGpuFormat } from './group.ts';

export const q2_g32 = groupGpuFormat(2, 32);
