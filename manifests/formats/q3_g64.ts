import { groupFormat } from './group.ts';

/** 3-bit codes, asymmetric, groups of 64: 24 bytes of codes + 3 bytes (f16 d, byte z) = 3.375 bits per weight (group.ts). */
export const q3_g64 = groupFormat('q3_g64', 3, 64);
