import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { progressBar, verifyModelDir } from '../../manifests/node.ts';

const usage = `usage: doppler verify <dir> [--json]

Re-hashes every shard and tokenizer blob of an RDRR model directory against its name and the
manifest. Prints what is missing or corrupt; exits 1 if anything is.`;

export const command: Command = {
  name: 'verify',
  summary: 'check every shard of a model directory against its BLAKE3 name',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } });
    if (positionals.length !== 1) throw new UsageError('expected exactly one <dir>');
    const dir = positionals[0]!;
    const bar = progressBar('verify');
    const r = await verifyModelDir(dir, (d, t) => bar.update(d, t));
    bar.end();
    if (values.json) console.log(JSON.stringify(r, null, 1));
    else {
      for (const h of r.missing) console.log(`missing  ${h}`);
      for (const c of r.corrupt) console.log(`corrupt  ${c.hash} (bytes hash to ${c.actual})`);
      for (const n of r.notRegular) console.log(`refused  ${n.hash}: ${n.reason}`);
      for (const w of r.wrongSize) console.log(`size     ${w.hash}: ${w.size} bytes, manifest says ${w.expected}`);
      if (r.unreferenced.length) console.log(`note: ${r.unreferenced.length} file(s) in shards/ not referenced by this manifest`);
      console.log(`${r.ok ? 'OK' : 'FAILED'}  ${r.id}  ${r.checked} file(s) hashed, ${r.missing.length} missing, ${r.corrupt.length} corrupt`);
    }
    return r.ok ? 0 : 1;
  },
};

