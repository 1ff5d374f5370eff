/**
 * The smoke benchmark's report in three forms: JSON for machines, a Markdown table for pull requests, and one
 * self-contained HTML page (inline CSS and SVG, no external assets, no script) for people.
 *
 * Render functions are pure and deterministic — sorted JSON keys, fixed number formatting (no locale), no
 * timestamps — so the same result renders to the same bytes. `writeReport` is the small writer for callers.
 */
import * as fs from "fs";
import * as path from "path";
import type { PgbenchComparison } from "./pgbench-scripts";
import { nodeToPgbenchTarget } from "./pgbench-scripts";
import type { ScenarioResult, SmokeResult } from "./smoke";
import type { TlsCostReport, TlsCostRow, TlsLegEvidence, TlsLegSummary } from "./tls-cost";

export interface ReportInput {
  readonly result: SmokeResult;
  /** Defaults to "pgvector smoke benchmark". */
  readonly title?: string;
  /** Settings that matter, as the caller read them from the server (shared_buffers, work_mem, huge_pages_status…). Defaults to none. */
  readonly settings?: Readonly<Record<string, string>>;
  /** Huge pages as the server uses them ("on", "off", "unknown"). Defaults to settings.huge_pages_status, else "unknown". */
  readonly hugePages?: string;
  /** HNSW build seconds measured elsewhere (the index manager). Defaults to the result's own build time. */
  readonly indexBuildSeconds?: number | null;
  /** Node vs pgbench on the same statements, when measured. Defaults to none. */
  readonly comparison?: readonly PgbenchComparison[];
  /** Plain text vs TLS through PgBouncer (`local perf --compare-tls`), when measured. Defaults to none. */
  readonly tlsCost?: TlsCostReport;
}

/** Stable JSON: keys sorted at every level, two-space indent, trailing newline. */
export function renderReportJson(input: ReportInput): string {
  const doc = {
    title: titleOf(input),
    pass: input.result.pass,
    hugePages: hugePagesOf(input),
    indexBuildSeconds: indexBuildOf(input),
    settings: input.settings ?? {},
    result: input.result,
    comparison: input.comparison ?? [],
    tlsCost: input.tlsCost ?? null,
  };
  return `${JSON.stringify(sortKeys(doc), null, 2)}\n`;
}

export function renderReportMarkdown(input: ReportInput): string {
  const r = input.result;
  const lines: string[] = [];
  lines.push(`## ${titleOf(input)}: ${r.pass ? "PASS" : "FAIL"}`, "");
  lines.push(summaryLine(input), "");
  lines.push(
    "| scenario | ops/s | target ops/s | p50 ms | p95 ms | p99 ms | max ms | errors | recall@10 | plan | result |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
  );
  for (const s of r.scenarios) {
    lines.push(
      `| ${s.name} | ${num(s.opsPerSec, 1)} | ≥ ${num(s.target.opsPerSec, 0)} | ${num(s.p50Ms, 2)} | ${num(s.p95Ms, 2)} | ${num(s.p99Ms, 2)} (≤ ${num(s.target.p99Ms, 0)}) | ${num(s.maxMs, 2)} | ${s.errors} | ${s.recallAt10 === undefined ? "–" : num(s.recallAt10, 3)} | ${s.plan ? mdCell(planText(s.plan)) : "–"} | ${s.pass ? "pass" : "**FAIL**"} |`,
    );
  }
  for (const s of r.skipped) lines.push(`| ${s.name} | – | – | – | – | – | – | – | – | – | skipped: ${mdCell(s.reason)} |`);
  const failures = r.scenarios.filter((s) => !s.pass);
  if (failures.length > 0) {
    lines.push("", "**Why it failed**", "");
    for (const s of failures) for (const f of s.failures) lines.push(`- ${s.name}: ${f}`);
    for (const s of r.scenarios) for (const e of s.errorSamples) lines.push(`- ${s.name} error: \`${e.replace(/`/g, "'")}\``);
  }
  const settings = Object.entries(input.settings ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (settings.length > 0) {
    lines.push("", "| setting | value |", "|---|---|");
    for (const [k, v] of settings) lines.push(`| ${mdCell(k)} | ${mdCell(v)} |`);
  }
  if (input.comparison && input.comparison.length > 0) {
    lines.push("", `**Node vs pgbench** (same statements; the client should reach ≥ ${Math.round(nodeToPgbenchTarget * 100)} % of pgbench)`, "");
    lines.push("| scenario | Node ops/s | pgbench tps | Node / pgbench | Node, binary vectors ops/s |", "|---|---:|---:|---:|---:|");
    for (const c of input.comparison) {
      lines.push(
        `| ${c.scenario} | ${num(c.nodeOpsPerSec, 1)} | ${num(c.pgbenchTps, 1)} | ${num(c.ratio * 100, 1)} % | ${c.nodeGeneratedOpsPerSec === undefined ? "–" : num(c.nodeGeneratedOpsPerSec, 1)} |`,
      );
    }
  }
  if (input.tlsCost) lines.push("", ...tlsCostMarkdown(input.tlsCost));
  lines.push(
    "",
    `Closed loop, ${r.run.concurrency} connections through PgBouncer, ${r.run.durationSeconds} s per scenario after ${r.run.warmupSeconds} s warm-up (sustained ${r.run.sustainedSeconds} s); latencies from an HDR histogram; recall@10 against exact search (index scans off).`,
  );
  return `${lines.join("\n")}\n`;
}

export function renderReportHtml(input: ReportInput): string {
  const r = input.result;
  const title = titleOf(input);
  const verdict = r.pass ? `<span class="pass">PASS</span>` : `<span class="fail">FAIL</span>`;
  const rows = r.scenarios
    .map(
      (s) => `<tr class="${s.pass ? "ok" : "bad"}"><td>${esc(s.name)}</td><td>${num(s.opsPerSec, 1)}</td><td>≥ ${num(s.target.opsPerSec, 0)}</td>` +
        `<td>${num(s.p50Ms, 2)}</td><td>${num(s.p95Ms, 2)}</td><td>${num(s.p99Ms, 2)}</td><td>${num(s.maxMs, 2)}</td><td>${s.errors}</td>` +
        `<td>${s.recallAt10 === undefined ? "–" : num(s.recallAt10, 3)}</td><td>${s.plan ? esc(planText(s.plan)) : "–"}</td>` +
        `<td>${s.pass ? "pass" : `FAIL<br><small>${s.failures.map(esc).join("<br>")}</small>`}</td></tr>`,
    )
    .concat(r.skipped.map((s) => `<tr><td>${esc(s.name)}</td><td colspan="10">skipped: ${esc(s.reason)}</td></tr>`))
    .join("\n");
  const settings = Object.entries(input.settings ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`)
    .join("\n");
  const comparison =
    input.comparison && input.comparison.length > 0
      ? `<h2>Node vs pgbench</h2>
<p>Same statements, concurrency and duration; the Node client should reach ≥ ${Math.round(nodeToPgbenchTarget * 100)} % of pgbench.</p>
<table><thead><tr><th>scenario</th><th>Node ops/s</th><th>pgbench tps</th><th>Node / pgbench</th><th>Node, binary vectors ops/s</th></tr></thead><tbody>
${input.comparison
  .map(
    (c) => `<tr class="${c.ratio >= nodeToPgbenchTarget ? "ok" : "bad"}"><td>${esc(c.scenario)}</td><td>${num(c.nodeOpsPerSec, 1)}</td><td>${num(c.pgbenchTps, 1)}</td><td>${num(c.ratio * 100, 1)} %</td><td>${c.nodeGeneratedOpsPerSec === undefined ? "–" : num(c.nodeGeneratedOpsPerSec, 1)}</td></tr>`,
  )
  .join("\n")}
</tbody></table>`
      : "";
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1f2328;max-width:72rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:right;vertical-align:top}
th:first-child,td:first-child,th:nth-child(10),td:nth-child(10),th:last-child,td:last-child{text-align:left}
td:nth-child(n+2):nth-child(-n+9){white-space:nowrap}td:last-child{min-width:9rem}
tr.bad td{background:#ffebe9}tr.ok td:last-child{color:#1a7f37}
.pass{color:#1a7f37}.fail{color:#cf222e}
.facts{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
.facts dt{font-weight:600}.facts dd{margin:0}
svg text{font-size:12px;fill:#1f2328}
</style>
</head>
<body>
<h1>${esc(title)}: ${verdict}</h1>
<dl class="facts">
<dt>Machine</dt><dd>${r.machine.cores} cores, ${bytes(r.machine.memoryBytes)} RAM</dd>
<dt>Table</dt><dd>${esc(r.table.name)}.${esc(r.table.column)} ${esc(r.table.type)}(${r.table.dimensions}), ${esc(r.table.metric)}, index ${esc(r.table.indexName)}, ef_search ${r.table.efSearch}, ${int(r.table.rows)} rows</dd>
<dt>Load</dt><dd>${r.load.rows > 0 ? `${int(r.load.rows)} rows at ${num(r.load.rowsPerSec, 0)} rows/s (binary COPY)` : "none (existing table)"}</dd>
<dt>HNSW build</dt><dd>${indexBuildOf(input) === null ? "not measured" : `${num(indexBuildOf(input) as number, 1)} s`}</dd>
<dt>Huge pages</dt><dd>${esc(hugePagesOf(input))}</dd>
<dt>Run</dt><dd>${r.run.concurrency} connections through PgBouncer, ${r.run.durationSeconds} s per scenario after ${r.run.warmupSeconds} s warm-up, sustained ${r.run.sustainedSeconds} s, seed ${r.run.seed}, ${esc(r.run.vectorEncoding)} vectors, ${r.run.pipeline ? "pipelined" : "sequential"} transactions, ${r.run.namedStatements ? "named prepared" : "unnamed"} statements</dd>
</dl>
<h2>Throughput vs target</h2>
${throughputSvg(r.scenarios)}
<h2>Latency percentiles</h2>
${latencySvg(r.scenarios)}
<h2>Scenarios</h2>
<table><thead><tr><th>scenario</th><th>ops/s</th><th>target</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>errors</th><th>recall@10</th><th>plan</th><th>result</th></tr></thead><tbody>
${rows}
</tbody></table>
${settings ? `<h2>Settings</h2>\n<table><tbody>\n${settings}\n</tbody></table>` : ""}
${comparison}
${input.tlsCost ? tlsCostHtml(input.tlsCost) : ""}
<p><small>Closed-loop clients (a stall is under-sampled: coordinated omission); latencies from an HDR histogram (3 significant digits); recall@10 against exact search with index scans off.</small></p>
</body>
</html>
`;
}

export interface WrittenReport {
  readonly json: string;
  readonly markdown: string;
  readonly html: string;
}

/** Writes report.json, report.md and report.html into `dir` (created when missing); returns their paths. */
export function writeReport(dir: string, input: ReportInput): WrittenReport {
  fs.mkdirSync(dir, { recursive: true });
  const out = { json: path.join(dir, "report.json"), markdown: path.join(dir, "report.md"), html: path.join(dir, "report.html") };
  fs.writeFileSync(out.json, renderReportJson(input));
  fs.writeFileSync(out.markdown, renderReportMarkdown(input));
  fs.writeFileSync(out.html, renderReportHtml(input));
  return out;
}

// ---- TLS cost ----------------------------------------------------------------------------------------------

function tlsCostIntro(t: TlsCostReport): string {
  return (
    `plain text (sslmode=disable) against TLS (${t.tlsMode}) through the same PgBouncer, table and ${t.concurrency} connections; ` +
    `each leg the median of ${t.rounds} alternating round${t.rounds === 1 ? "" : "s"} of ${num(t.seconds, 0)} s; ` +
    `goal: with TLS at least ${Math.round(t.goal * 100)} % of plain text in steady state`
  );
}

/** ops/s, or tps for pgbench. */
function legRate(row: TlsCostRow, leg: TlsLegSummary): string {
  return `${num(leg.opsPerSec, 1)}${row.steadyState ? "" : " tps"}`;
}

/** p50 / p99 for Node; pgbench -C's average connection time. */
function legLatency(leg: TlsLegSummary): string {
  if (leg.connectionMs !== undefined) return `connect ${num(leg.connectionMs, 2)}`;
  return leg.p50Ms === null || leg.p99Ms === null ? "–" : `${num(leg.p50Ms, 2)} / ${num(leg.p99Ms, 2)}`;
}

function legRounds(leg: TlsLegSummary): string {
  return leg.rounds.map((r) => num(r.opsPerSec, 0)).join(" · ");
}

function tlsVerdict(row: TlsCostRow): string {
  if (row.meetsGoal === null) return "handshake cost, not judged";
  if (row.meetsGoal) return "met";
  return row.plain.errors + row.tls.errors > 0 ? "MISSED (errors)" : "MISSED";
}

function evidenceText(e: TlsLegEvidence): string {
  const connections = `${e.clients} connection${e.clients === 1 ? "" : "s"}`;
  const tls = e.tls.filter((t) => t !== "");
  return `${e.client}, ${e.leg === "plain" ? "plain text" : "TLS"}: ${connections} (${e.applicationName}), ${tls.length === 0 ? "none with TLS" : `TLS ${tls.join(", ")}`}`;
}

function tlsCostMarkdown(t: TlsCostReport): string[] {
  const lines = [
    `**TLS cost through PgBouncer: ${t.meetsGoal ? "goal met" : "goal MISSED"}** (${tlsCostIntro(t)})`,
    "",
    "| scenario | client | plain ops/s | TLS ops/s | TLS / plain | plain p50 / p99 ms | TLS p50 / p99 ms | errors plain / TLS | rounds plain | rounds TLS | goal |",
    "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|",
  ];
  for (const row of t.rows) {
    lines.push(
      `| ${row.scenario} | ${mdCell(row.client)} | ${legRate(row, row.plain)} | ${legRate(row, row.tls)} | ${num(row.ratio * 100, 1)} % | ${legLatency(row.plain)} | ${legLatency(row.tls)} | ` +
        `${row.plain.errors} / ${row.tls.errors} | ${legRounds(row.plain)} | ${legRounds(row.tls)} | ${row.meetsGoal === false ? `**${tlsVerdict(row)}**` : tlsVerdict(row)} |`,
    );
  }
  lines.push("", `Each leg as PgBouncer's SHOW CLIENTS saw it: ${t.evidence.map(evidenceText).map(mdCell).join("; ")}.`);
  if (t.reconnectCommand) lines.push("", `Reconnect case: \`PGSSLMODE=disable|verify-full ${t.reconnectCommand.replace(/`/g, "'")}\`.`);
  return lines;
}

function tlsCostHtml(t: TlsCostReport): string {
  const rows = t.rows
    .map(
      (row) =>
        `<tr class="${row.meetsGoal === false ? "bad" : "ok"}"><td>${esc(row.scenario)}</td><td>${esc(row.client)}</td><td>${legRate(row, row.plain)}</td><td>${legRate(row, row.tls)}</td>` +
        `<td>${num(row.ratio * 100, 1)} %</td><td>${legLatency(row.plain)}</td><td>${legLatency(row.tls)}</td><td>${row.plain.errors} / ${row.tls.errors}</td>` +
        `<td>${legRounds(row.plain)}</td><td>${legRounds(row.tls)}</td><td>${esc(tlsVerdict(row))}</td></tr>`,
    )
    .join("\n");
  return `<h2>TLS cost through PgBouncer: ${t.meetsGoal ? `<span class="pass">goal met</span>` : `<span class="fail">goal missed</span>`}</h2>
<p>${esc(tlsCostIntro(t))}.</p>
<table><thead><tr><th>scenario</th><th>client</th><th>plain ops/s</th><th>TLS ops/s</th><th>TLS / plain</th><th>plain p50 / p99 ms</th><th>TLS p50 / p99 ms</th><th>errors plain / TLS</th><th>rounds plain</th><th>rounds TLS</th><th>goal</th></tr></thead><tbody>
${rows}
</tbody></table>
<p>Each leg as PgBouncer's SHOW CLIENTS saw it:</p>
<ul>${t.evidence.map((e) => `<li>${esc(evidenceText(e))}</li>`).join("")}</ul>
${t.reconnectCommand ? `<p>Reconnect case: <code>PGSSLMODE=disable|verify-full ${esc(t.reconnectCommand)}</code></p>` : ""}`;
}

// ---- charts --------------------------------------------------------------------------------------------------

const chartWidth = 720;
const labelWidth = 90;
const rowHeight = 28;

/** One horizontal bar per scenario, with its target as a vertical line; red when below target. */
function throughputSvg(scenarios: readonly ScenarioResult[]): string {
  if (scenarios.length === 0) return "<p>No scenario ran.</p>";
  const max = niceMax(Math.max(...scenarios.flatMap((s) => [s.opsPerSec, s.target.opsPerSec])) * 1.1);
  const plot = chartWidth - labelWidth - 20;
  const x = (v: number) => labelWidth + (v / max) * plot;
  const height = scenarios.length * rowHeight + 30;
  const parts = scenarios.map((s, i) => {
    const y = 10 + i * rowHeight;
    const ok = s.opsPerSec >= s.target.opsPerSec;
    return (
      `<text x="${labelWidth - 6}" y="${y + 14}" text-anchor="end">${esc(s.name)}</text>` +
      `<rect x="${labelWidth}" y="${y + 2}" width="${fix(x(s.opsPerSec) - labelWidth)}" height="${rowHeight - 10}" fill="${ok ? "#2da44e" : "#cf222e"}"><title>${esc(s.name)}: ${num(s.opsPerSec, 1)} ops/s (target ${num(s.target.opsPerSec, 0)})</title></rect>` +
      `<line x1="${fix(x(s.target.opsPerSec))}" x2="${fix(x(s.target.opsPerSec))}" y1="${y}" y2="${y + rowHeight - 6}" stroke="#1f2328" stroke-width="2" stroke-dasharray="4 2"/>` +
      `<text x="${fix(Math.min(x(s.opsPerSec) + 4, chartWidth - 60))}" y="${y + 14}">${num(s.opsPerSec, 0)}</text>`
    );
  });
  return svg(height, [...parts, axis(max, x, height - 16, "ops/s (dashed line: target)")]);
}

/**
 * p50, p95, p99 bars per scenario on a log scale (a few milliseconds and the 200 ms target on one axis), with the
 * p99 target as a dashed line.
 */
function latencySvg(scenarios: readonly ScenarioResult[]): string {
  if (scenarios.length === 0) return "";
  const series: { key: "p50Ms" | "p95Ms" | "p99Ms"; label: string; color: string }[] = [
    { key: "p50Ms", label: "p50", color: "#54aeff" },
    { key: "p95Ms", label: "p95", color: "#0969da" },
    { key: "p99Ms", label: "p99", color: "#0a3069" },
  ];
  const target = Math.max(...scenarios.map((s) => s.target.p99Ms));
  const low = 0.1;
  const high = 10 ** Math.ceil(Math.log10(Math.max(target, ...scenarios.map((s) => s.p99Ms), 1) * 1.5));
  const plot = chartWidth - labelWidth - 20;
  const x = (v: number) => labelWidth + (Math.log10(Math.max(low, v) / low) / Math.log10(high / low)) * plot;
  const group = series.length * 12 + 10;
  const height = scenarios.length * group + 50;
  const parts: string[] = [];
  scenarios.forEach((s, i) => {
    const y = 10 + i * group;
    parts.push(`<text x="${labelWidth - 6}" y="${y + 20}" text-anchor="end">${esc(s.name)}</text>`);
    series.forEach((k, j) => {
      parts.push(
        `<rect x="${labelWidth}" y="${y + j * 12}" width="${fix(Math.max(1, x(s[k.key]) - labelWidth))}" height="10" fill="${k.color}"><title>${esc(s.name)} ${k.label}: ${num(s[k.key], 2)} ms</title></rect>` +
          `<text x="${fix(Math.min(x(s[k.key]) + 4, chartWidth - 70))}" y="${y + j * 12 + 9}" font-size="10">${k.label} ${num(s[k.key], 2)}</text>`,
      );
    });
  });
  const axisY = height - 16;
  const decades: number[] = [];
  for (let d = low; d <= high * 1.0001; d *= 10) decades.push(d);
  parts.push(
    `<line x1="${fix(x(target))}" x2="${fix(x(target))}" y1="4" y2="${height - 36}" stroke="#cf222e" stroke-width="2" stroke-dasharray="4 2"/>`,
    `<text x="${fix(Math.min(x(target) + 4, chartWidth - 90))}" y="${height - 38}" fill="#cf222e">p99 target ${num(target, 0)} ms</text>`,
    `<line x1="${labelWidth}" x2="${fix(x(high))}" y1="${axisY - 12}" y2="${axisY - 12}" stroke="#8c959f"/>`,
    ...decades.map((d) => `<text x="${fix(x(d))}" y="${axisY}" text-anchor="middle" font-size="10">${num(d, d < 1 ? 1 : 0)}</text>`),
    `<text x="${chartWidth - 10}" y="${axisY + 12}" text-anchor="end" font-size="10">milliseconds (log scale)</text>`,
  );
  return svg(height, parts);
}

function axis(max: number, x: (v: number) => number, y: number, label: string): string {
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => max * f);
  return (
    `<line x1="${labelWidth}" x2="${fix(x(max))}" y1="${y - 12}" y2="${y - 12}" stroke="#8c959f"/>` +
    ticks.map((t) => `<text x="${fix(x(t))}" y="${y}" text-anchor="middle" font-size="10">${num(t, t < 10 ? 1 : 0)}</text>`).join("") +
    `<text x="${chartWidth - 10}" y="${y + 12}" text-anchor="end" font-size="10">${esc(label)}</text>`
  );
}

function svg(height: number, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${chartWidth}" height="${height + 12}" viewBox="0 0 ${chartWidth} ${height + 12}" role="img">\n${parts.join("\n")}\n</svg>`;
}

/** 1, 2 or 5 × a power of ten at or above v, so axis ticks are round. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ---- formatting ----------------------------------------------------------------------------------------------

/** The custom plan, the generic plan only when it differs, and a warning when either misses the HNSW index. */
function planText(plan: NonNullable<ScenarioResult["plan"]>): string {
  const generic = plan.generic && plan.generic.shape !== plan.shape ? ` (generic plan: ${plan.generic.shape})` : "";
  return `${plan.shape}${generic}${plan.usesIndex ? "" : " — NOT using the HNSW index"}`;
}

function titleOf(input: ReportInput): string {
  return input.title ?? "pgvector smoke benchmark";
}

function hugePagesOf(input: ReportInput): string {
  return input.hugePages ?? input.settings?.huge_pages_status ?? "unknown";
}

function indexBuildOf(input: ReportInput): number | null {
  return input.indexBuildSeconds !== undefined ? input.indexBuildSeconds : input.result.indexBuildSeconds;
}

function summaryLine(input: ReportInput): string {
  const r = input.result;
  const build = indexBuildOf(input);
  return [
    `Machine: ${r.machine.cores} cores, ${bytes(r.machine.memoryBytes)} RAM`,
    `table ${r.table.name} (${r.table.type}(${r.table.dimensions}), ${r.table.metric}, ef_search ${r.table.efSearch}, ${int(r.table.rows)} rows)`,
    r.load.rows > 0 ? `loaded ${int(r.load.rows)} rows at ${num(r.load.rowsPerSec, 0)} rows/s` : "no load",
    `HNSW build ${build === null ? "not measured" : `${num(build, 1)} s`}`,
    `huge pages: ${hugePagesOf(input)}`,
  ].join(" · ");
}

/** Fixed-point with thousands separators, independent of the locale. */
export function num(value: number, digits: number): string {
  if (!Number.isFinite(value)) return String(value);
  const [whole, fraction] = Math.abs(value).toFixed(digits).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${value < 0 && Number(value.toFixed(digits)) !== 0 ? "-" : ""}${grouped}${fraction ? `.${fraction}` : ""}`;
}

function int(value: number): string {
  return num(value, 0);
}

function fix(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

function bytes(n: number): string {
  return `${num(n / 2 ** 30, 1)} GiB`;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function mdCell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
