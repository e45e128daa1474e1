/**
 * Expert selection on the device for Backend.routedExperts: one thread reads a token's routing
 * ([ids | weights], f32), orders the picks by ascending expert id (the order the CPU-routed path
 * adds experts in), writes them to `sel` ([ids | weight bits | 0], the row/scale table the
 * scatter-add kernel reads), and patches the weight offsets of the expert GEMVs recorded after it:
 * each table entry (word, pick, base, stride) sets u[word] = base + id(pick) · stride, where u is
 * the uniform buffer those GEMVs read their parameters from. The patch lands after the queue's
 * write of that buffer and before the GEMVs run, in command order.
 */
import { paramsStruct, type KernelSource } from './common.wgsl.ts';

export function selectExpertsSource(k: number): KernelSource {
  const params = [['entries', 'u32'], ['last', 'u32'], ['tableOff', 'u32']] as const;
  const code = `${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> u: array<u32>;
@group(0) @binding(2) var<storage, read_write> sel: array<u32>;
@group(0) @binding(3) var<storage, read> r: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<u32>;
@compute @workgroup_size(1)
fn main() {
  var ids: array<u32, ${k}>;
  var ws: array<f32, ${k}>;
  for (var j = 0u; j < ${k}u; j++) {
    let id = min(u32(max(r[j], 0.0)), p.last);
    let w = r[${k}u + j];
    var i = j;
    while (i > 0u && ids[i - 1u] > id) { ids[i] = ids[i - 1u]; ws[i] = ws[i - 1u]; i--; }
    ids[i] = id;
    ws[i] = w;
  }
  for (var j = 0u; j < ${k}u; j++) { sel[j] = ids[j]; sel[${k}u + j] = bitcast<u32>(ws[j]); }
  sel[${2 * k}u] = 0u;
  for (var e = 0u; e < p.entries; e++) {
    let t = p.tableOff + 4u * e;
    u[table[t]] = table[t + 2u] + ids[table[t + 1u]] * table[t + 3u];
  }
}\n`;
  return { params, code };
}
