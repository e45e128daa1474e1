/** The committed WASM modules are what the AssemblyScript source compiles to today. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GENERATED, generatedModules } from '../../../kernels/wasm/build.ts';

describe('kernels/wasm/modules.generated.ts', () => {
  it('matches a fresh build of kernels/wasm/as/kernels.ts (run `node kernels/wasm/build.ts` after editing it)', async () => {
    expect(await generatedModules()).toBe(readFileSync(GENERATED, 'utf8'));
  });
});
