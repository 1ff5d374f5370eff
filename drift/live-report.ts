/** The live drift report: text for a terminal, Markdown for an issue or PR, JSON for tools. No password anywhere. */
import { mdCode, mdTable, mdText, showValue, type Format } from "./format";
import type { LiveArea, LiveChecked, LiveFinding } from "./live";

export interface LiveDrift {
  readonly drift: boolean;
  readonly stack: string;
  /** Where the desired state came from: `rendered/prod`, or `a fresh render of Pulumi.prod.yaml`. */
  readonly desiredFrom: string;
  readonly postgres: { readonly url: string; readonly version: string };
  readonly pgbouncer: { readonly url: string } | null;
  readonly findings: readonly LiveFinding[];
  readonly checked: LiveChecked;
}

const areaTitles: Readonly<Record<LiveArea, string>> = {
  postgresql: "PostgreSQL settings (pg_settings)",
  override: "Per-role/database overrides (pg_db_role_setting)",
  "huge pages": "Huge pages",
  extension: "Extensions",
  index: "HNSW indexes",
  pgbouncer: "PgBouncer (SHOW CONFIG)",
};

const areaOrder: readonly LiveArea[] = ["postgresql", "override", "huge pages", "extension", "index", "pgbouncer"];

function grouped(findings: readonly LiveFinding[]): [LiveArea, LiveFinding[]][] {
  return areaOrder.map((a) => [a, findings.filter((f) => f.area === a)] as [LiveArea, LiveFinding[]]).filter(([, f]) => f.length > 0);
}

function checkedLine(c: LiveChecked): string {
  const parts = [`${c.settings} settings`, `${c.extensions} extensions`, `${c.indexes} HNSW index${c.indexes === 1 ? "" : "es"}`];
  if (c.pgbouncerSettings > 0) parts.push(`${c.pgbouncerSettings} PgBouncer settings`);
  return `checked ${parts.join(", ")}, overrides, huge pages and ALTER SYSTEM`;
}

function where(r: LiveDrift): string {
  return `stack ${r.stack} vs ${r.postgres.url} (PostgreSQL ${r.postgres.version})${r.pgbouncer ? ` and ${r.pgbouncer.url}` : ""}`;
}

function count(r: LiveDrift): string {
  const n = r.findings.filter((f) => f.drift).length;
  return n === 0 ? "no drift" : `${n} difference${n === 1 ? "" : "s"}`;
}

function headline(r: LiveDrift): string {
  return r.drift ? `drift: ${count(r)}, ${where(r)}` : `no drift: ${where(r)}`;
}

function textFinding(f: LiveFinding): string {
  const values =
    f.desired !== undefined && f.live !== undefined
      ? `rendered ${f.desired}, live ${f.live}`
      : f.live !== undefined
        ? `live ${f.live}`
        : f.desired !== undefined
          ? `rendered ${f.desired}`
          : "";
  const tail = [f.source && `source: ${f.source}`, f.detail].filter(Boolean).join("; ");
  return `${f.name}: ${values}${tail ? ` (${tail})` : ""}`;
}

export function liveDriftText(r: LiveDrift): string {
  const lines = [headline(r), `desired state: ${r.desiredFrom}`];
  const drift = r.findings.filter((f) => f.drift);
  const notes = r.findings.filter((f) => !f.drift);
  for (const [area, list] of grouped(drift)) {
    lines.push("", areaTitles[area], ...list.map((f) => `  ${textFinding(f)}`));
  }
  if (notes.length > 0) lines.push("", "Notes (not drift)", ...notes.map((f) => `  [${f.area}] ${textFinding(f)}`));
  lines.push("", checkedLine(r.checked));
  return `${lines.join("\n")}\n`;
}

function mdRow(f: LiveFinding): string[] {
  return [
    mdCode(f.name),
    f.desired === undefined ? "*(not set)*" : mdCode(showValue(f.desired)),
    f.live === undefined ? "*(n/a)*" : mdCode(showValue(f.live)),
    mdText([f.source, f.detail].filter(Boolean).join("; ")),
  ];
}

export function liveDriftMarkdown(r: LiveDrift): string {
  const drift = r.findings.filter((f) => f.drift);
  const notes = r.findings.filter((f) => !f.drift);
  const lines = [`## pgstack live drift: ${count(r)}`, "", `${mdText(where(r))}. Desired state: ${mdText(r.desiredFrom)}.`, ""];
  for (const [area, list] of grouped(drift)) {
    lines.push(`### ${areaTitles[area]}`, "", ...mdTable(["name", "rendered", "live", "source / detail"], list.map(mdRow)), "");
  }
  if (notes.length > 0) {
    lines.push("### Notes (not drift)", "", ...mdTable(["name", "rendered", "live", "source / detail"], notes.map(mdRow)), "");
  }
  lines.push(`*${checkedLine(r.checked)}*`);
  return `${lines.join("\n")}\n`;
}

export function formatLiveDrift(r: LiveDrift, format: Format): string {
  switch (format) {
    case "text":
      return liveDriftText(r);
    case "markdown":
      return liveDriftMarkdown(r);
    case "json":
      return `${JSON.stringify(r, null, 2)}\n`;
  }
}
