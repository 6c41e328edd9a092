// Prints a markdown table from ringsfu-bench --json files (one row per run), for the
// side-by-side comparison in bench/README.md. Usage: node summarize.mjs FILE.json...
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const fmt = (v, d) => (v === null || v === undefined ? '-' : Number(v).toFixed(d));
console.log('| run | PxC | size | offered pps | fwd pps | loss % | p50 µs | p99 µs | server CPU % | server µs/fwd |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const file of process.argv.slice(2)) {
	let doc;
	try {
		doc = JSON.parse(readFileSync(file, 'utf8'));
	} catch {
		continue; // not a result file (a plan, a half-written file)
	}
	for (const r of doc.runs ?? []) {
		const t = r.result;
		console.log(`| ${basename(file, '.json')} (${r.series}) | 1x${r.consumers_per_producer} | ${r.payload} | ` +
			`${fmt(t.offered_pps, 0)} | ${fmt(t.forwarded_pps, 0)} | ${fmt(t.loss_pct, 3)} | ` +
			`${fmt(t.latency_p50_us, 0)} | ${fmt(t.latency_p99_us, 0)} | ${fmt(t.server_cpu_pct, 1)} | ` +
			`${fmt(t.server_cpu_us_per_fwd, 2)} |`);
	}
}
