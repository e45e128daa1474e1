import { groupFormat } from './group.ts';

/** 2-bit codes, asymmetric, groups of 32: 8 bytes of codes + 3 bytes (f16 d, byte z) = 2.75 bits per weight (group.ts). */
export const q2_g32 = groupFormat('q2_g32', 2, 32);
