// `npm run bench`: runs the benchmarks, prints the figures and writes them, with a
// description of the machine, to bench/results/. `npm run bench -- --quick` runs shorter.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { formatRegionNodeBench, runRegionNodeBench } from './region-node-bench.ts';

const quick = process.argv.includes('--quick');
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}, Node ${process.version}`;
const started = new Date().toISOString();
const result = await runRegionNodeBench(quick ? { durationMs: 3_000, backlog: 100_000 } : {});
const text = [`# admq benchmark results`, '', `Run ${started} on ${machine}${quick ? ' (quick mode)' : ''}.`, '', formatRegionNodeBench(result)].join('\n');
console.log(text);
writeFileSync(new URL('./results/region-node.md', import.meta.url), text);
writeFileSync(new URL('./results/region-node.json', import.meta.url), JSON.stringify({ started, machine, quick, result }, null, 2));
