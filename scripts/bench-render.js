#!/usr/bin/env node
// Wall time of `pgstack render --all` (every stack, resources.yaml included), run N times into a temporary
// directory: median, min and max. The number the render speed goal is stated in.
//
//   node scripts/bench-render.js [--runs N] [--cold] [PROJECT_DIR…]
//
// With several project directories (e.g. a worktree of the base commit and this one) the runs alternate between
// them, so a neighbour's load on the machine falls on both alike. --cold gives every run an empty TMPDIR, so tsx
// has no compiled TypeScript to reuse (its cache lives under the temporary directory): the first render after a
// checkout. Each run's output is checked to exist; a failed render stops the benchmark with its stderr.
"use strict";
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

function usage(message) {
  process.stderr.write(`${message}\nusage: node scripts/bench-render.js [--runs N] [--cold] [PROJECT_DIR…]\n`);
  process.exit(2);
}

function parse(argv) {
  const opts = { runs: 5, cold: false, roots: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") {
      opts.runs = Number(argv[++i]);
      if (!Number.isInteger(opts.runs) || opts.runs < 1) usage(`--runs needs a whole number ≥ 1, not ${argv[i]}`);
    } else if (a === "--cold") opts.cold = true;
    else if (a === "--help" || a === "-h") usage("");
    else if (a.startsWith("-")) usage(`unknown option ${a}`);
    else opts.roots.push(path.resolve(a));
  }
  if (opts.roots.length === 0) opts.roots.push(path.resolve(__dirname, ".."));
  for (const root of opts.roots) {
    if (!fs.existsSync(path.join(root, "bin", "pgstack.js"))) usage(`${root} has no bin/pgstack.js`);
  }
  return opts;
}

function stacksOf(root) {
  return fs
    .readdirSync(root)
    .map((f) => /^Pulumi\.([A-Za-z0-9_-]+)\.yaml$/.exec(f)?.[1])
    .filter(Boolean)
    .sort();
}

/** One render of every stack; wall time in ms. */
function renderOnce(root, scratch, cold) {
  const out = path.join(scratch, "out");
  const env = { ...process.env };
  if (cold) {
    env.TMPDIR = fs.mkdtempSync(path.join(scratch, "tmp-"));
  }
  const started = process.hrtime.bigint();
  const run = spawnSync(process.execPath, [path.join(root, "bin", "pgstack.js"), "render", "--all", "--out", out], { cwd: root, env, encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (run.status !== 0) {
    process.stderr.write(`render failed in ${root} (exit ${run.status ?? run.signal}):\n${run.stderr}${run.stdout}`);
    process.exit(1);
  }
  for (const stack of stacksOf(root)) {
    if (!fs.existsSync(path.join(out, stack, "resources.yaml"))) {
      process.stderr.write(`render in ${root} wrote no ${stack}/resources.yaml\n`);
      process.exit(1);
    }
  }
  fs.rmSync(out, { recursive: true, force: true });
  if (env.TMPDIR !== process.env.TMPDIR) fs.rmSync(env.TMPDIR, { recursive: true, force: true });
  return ms;
}

function summary(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  return `median ${s(median)}  min ${s(sorted[0])}  max ${s(sorted[sorted.length - 1])}  (runs: ${times.map((t) => (t / 1000).toFixed(2)).join(", ")})`;
}

function main() {
  const opts = parse(process.argv.slice(2));
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-bench-"));
  const times = new Map(opts.roots.map((r) => [r, []]));
  try {
    for (let i = 0; i < opts.runs; i++) {
      for (const root of opts.roots) {
        const ms = renderOnce(root, scratch, opts.cold);
        times.get(root).push(ms);
        process.stderr.write(`run ${i + 1}/${opts.runs} ${root}: ${(ms / 1000).toFixed(2)} s\n`);
      }
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  const cpus = os.cpus().length;
  const load = os.loadavg().map((l) => l.toFixed(2)).join(" ");
  console.log(`render --all, ${opts.runs} runs${opts.cold ? ", cold (empty TMPDIR: no tsx cache)" : ""}, ${cpus} cpus, load average ${load}`);
  for (const [root, t] of times) console.log(`${root}: ${summary(t)}`);
}

main();
