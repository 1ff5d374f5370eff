/**
 * Two stacks' desired state side by side: every value that differs, grouped the way people ask ("why is staging
 * slower than prod?"): node and memory, PostgreSQL, PgBouncer, HNSW plan, alert thresholds, benchmark, resources.
 */
import type { Rendered } from "../configs/rendered";
import { pgbouncerSettings } from "../configs/pgbouncer";
import { postgresqlSettingValues } from "../configs/postgresql";
import { parseKeyValueLines } from "./config-files";
import { expandEmbeddedFile } from "./snapshot";
import { mdCode, mdTable, mdText, showValue, type Format } from "./format";
import type { RecordedResource } from "./resources";
import { treeChanges } from "./tree-diff";
import { sameSetting } from "./values";

export interface DiffRow {
  readonly name: string;
  /** Absent: this stack does not have it. */
  readonly a?: string;
  readonly b?: string;
}

export interface DiffGroup {
  readonly title: string;
  readonly rows: readonly DiffRow[];
  /** A sentence instead of (or before) rows: why a group was not compared value by value. */
  readonly note?: string;
}

export interface StackDiff {
  readonly a: string;
  readonly b: string;
  readonly groups: readonly DiffGroup[];
  /** Values that are equal in both, counted, so "no difference" is visibly a result. */
  readonly same: number;
}

export interface StackSide {
  readonly rendered: Rendered;
  /** The memory plan file (memory-plan.yaml) of the stack. */
  readonly memoryPlan: string;
  /** Resources the program registers, when known. */
  readonly resources?: readonly RecordedResource[];
}

type Values = ReadonlyMap<string, string>;

function rowsOf(a: Values, b: Values, counter: { same: number }): DiffRow[] {
  const names = [...new Set([...a.keys(), ...b.keys()])];
  const rows: DiffRow[] = [];
  for (const name of names) {
    const x = a.get(name);
    const y = b.get(name);
    if (x !== undefined && y !== undefined && sameSetting(x, y)) counter.same++;
    else rows.push({ name, a: x, b: y });
  }
  return rows;
}

/** Plain data flattened to `path → value` (lists of plain values kept whole). */
function flatten(value: unknown, prefix = "", out = new Map<string, string>()): Map<string, string> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const key of Object.keys(value).sort()) flatten((value as Record<string, unknown>)[key], prefix ? `${prefix}.${key}` : key, out);
  } else out.set(prefix, typeof value === "string" ? value : JSON.stringify(value));
  return out;
}

function nodeValues(side: StackSide): Values {
  const spec = side.rendered.spec;
  const out = new Map<string, string>([
    ["target", spec.target],
    ["node.cpus", String(spec.node.cpus)],
    ["node.storage", spec.node.storage],
    ["postgres.hugePages", spec.postgres.hugePages],
  ]);
  for (const [k, v] of parseKeyValueLines(side.memoryPlan)) out.set(k, v);
  return out;
}

function pgbouncerValues(side: StackSide): Values {
  return new Map(pgbouncerSettings(side.rendered.spec).map((s) => [s.name, s.value]));
}

/** Plan entries by table.column; the DDL strings follow from these values, so they are left out. */
function hnswValues(side: StackSide): Values {
  const out = new Map<string, string>();
  for (const e of side.rendered.indexPlan) {
    const at = `${e.table}.${e.column}`;
    const fields: Record<string, unknown> = {
      index: e.indexName,
      type: `${e.type}(${e.dimensions})`,
      metric: e.metric,
      m: e.m,
      ef_construction: e.efConstruction,
      ef_search: e.efSearch,
      storage: e.storage,
      "build maintenance_work_mem": e.build.maintenanceWorkMem,
      "build max_parallel_maintenance_workers": e.build.maxParallelMaintenanceWorkers,
      "filter columns": e.filterColumns.join(", "),
      "creates table": e.createTableSql !== null,
    };
    for (const [k, v] of Object.entries(fields)) out.set(`${at} ${k}`, String(v));
  }
  return out;
}

/** `prod` in `prod-postgres`, `pgstack-prod`, `stack: prod`: the stack's own name, where a name part is expected. */
function stackNamePattern(stack: string): RegExp {
  const escaped = stack.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^A-Za-z0-9])${escaped}(?=$|[^A-Za-z0-9])`, "g");
}

function withoutStackName(value: unknown, stack: string): unknown {
  return JSON.parse(JSON.stringify(value ?? null).replace(stackNamePattern(stack), "$1<stack>"));
}

function resourceGroup(a: StackSide, b: StackSide, counter: { same: number }): DiffGroup | undefined {
  if (!a.resources || !b.resources) return undefined;
  const sa = a.rendered.spec;
  const sb = b.rendered.spec;
  if (sa.target !== sb.target) {
    const count = (rs: readonly RecordedResource[]) => `${rs.length} resources`;
    return {
      title: "Resources",
      rows: [{ name: "resources", a: count(a.resources), b: count(b.resources) }],
      note: `targets differ (${sa.target} vs ${sb.target}): their resources are not compared input by input`,
    };
  }
  // Resources are matched by type and name with the stack's own name taken out; values that differ only by the
  // stack's name (labels, namespaces named after it) are not differences worth a row.
  const key = (r: RecordedResource, stack: string) => `${r.type} ${String(withoutStackName(r.name, stack))}`;
  const byA = new Map(a.resources.map((r) => [key(r, sa.stack), r]));
  const byB = new Map(b.resources.map((r) => [key(r, sb.stack), r]));
  const rows: DiffRow[] = [];
  for (const id of [...new Set([...byA.keys(), ...byB.keys()])].sort()) {
    const ra = byA.get(id);
    const rb = byB.get(id);
    if (!ra || !rb) {
      rows.push({ name: id, a: ra ? "present" : undefined, b: rb ? "present" : undefined });
      continue;
    }
    const changes = treeChanges(withoutStackName(ra.inputs, sa.stack), withoutStackName(rb.inputs, sb.stack)).flatMap(expandEmbeddedFile);
    if (changes.length === 0) counter.same++;
    for (const c of changes) {
      // Rendered files carried in a resource (ConfigMap keys, uploads) are compared setting by setting above.
      if (c.path.includes(" › ")) continue;
      // Values are shown with each stack's own name written as <stack>, as they were compared.
      rows.push({ name: `${id}: ${c.path}`, a: c.old === undefined ? undefined : showValue(c.old), b: c.new === undefined ? undefined : showValue(c.new) });
    }
  }
  return { title: "Resources", rows };
}

export function diffStacks(a: StackSide, b: StackSide): StackDiff {
  const counter = { same: 0 };
  const ra = a.rendered;
  const rb = b.rendered;
  const groups: DiffGroup[] = [
    { title: "Node and memory", rows: rowsOf(nodeValues(a), nodeValues(b), counter) },
    {
      title: "PostgreSQL (postgresql.conf)",
      rows: rowsOf(new Map(Object.entries(postgresqlSettingValues(ra.spec))), new Map(Object.entries(postgresqlSettingValues(rb.spec))), counter),
    },
    { title: "PgBouncer (pgbouncer.ini)", rows: rowsOf(pgbouncerValues(a), pgbouncerValues(b), counter) },
    { title: "HNSW index plan", rows: rowsOf(hnswValues(a), hnswValues(b), counter) },
    { title: "Alert thresholds", rows: rowsOf(flatten(ra.spec.alerts), flatten(rb.spec.alerts), counter) },
    { title: "Benchmark", rows: rowsOf(flatten(ra.spec.benchmark), flatten(rb.spec.benchmark), counter) },
  ];
  const resources = resourceGroup(a, b, counter);
  if (resources) groups.push(resources);
  return { a: ra.spec.stack, b: rb.spec.stack, groups: groups.filter((g) => g.rows.length > 0 || g.note), same: counter.same };
}

// ------------------------------------------------------------------------------------------------------ output

const absent = "(not set)";

export function stackDiffText(d: StackDiff, notes: readonly string[] = []): string {
  const lines: string[] = [];
  const differing = d.groups.reduce((n, g) => n + g.rows.length, 0);
  lines.push(`${d.a} vs ${d.b}: ${differing} value${differing === 1 ? "" : "s"} differ, ${d.same} are the same`, ...notes.map((n) => `note: ${n}`));
  for (const g of d.groups) {
    const nameWidth = Math.min(60, Math.max(8, ...g.rows.map((r) => r.name.length)));
    const aWidth = Math.min(40, Math.max(d.a.length, ...g.rows.map((r) => (r.a ?? absent).length)));
    lines.push("", g.title, ...(g.note ? [`  ${g.note}`] : []));
    if (g.rows.length > 0) lines.push(`  ${"".padEnd(nameWidth)}  ${d.a.padEnd(aWidth)}  ${d.b}`);
    for (const r of g.rows) {
      const values = `${(r.a ?? absent).padEnd(aWidth)}  ${r.b ?? absent}`;
      // A long name (a resource input path) gets its own line, so the value columns stay aligned.
      if (r.name.length > nameWidth) lines.push(`  ${r.name}`, `  ${"".padEnd(nameWidth)}  ${values}`);
      else lines.push(`  ${r.name.padEnd(nameWidth)}  ${values}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

export function stackDiffMarkdown(d: StackDiff, notes: readonly string[] = []): string {
  const differing = d.groups.reduce((n, g) => n + g.rows.length, 0);
  const lines = [`## ${mdCode(d.a)} vs ${mdCode(d.b)}: ${differing} value${differing === 1 ? "" : "s"} differ, ${d.same} are the same`, ""];
  for (const n of notes) lines.push(`*${mdText(n)}*`, "");
  for (const g of d.groups) {
    lines.push(`### ${mdText(g.title)}`, "");
    if (g.note) lines.push(mdText(g.note), "");
    if (g.rows.length > 0) {
      lines.push(...mdTable(["", mdCode(d.a), mdCode(d.b)], g.rows.map((r) => [mdCode(r.name), r.a === undefined ? `*${absent}*` : mdCode(r.a), r.b === undefined ? `*${absent}*` : mdCode(r.b)])), "");
    }
  }
  return `${lines.join("\n")}\n`;
}

export function formatStackDiff(d: StackDiff, format: Format, notes: readonly string[] = []): string {
  switch (format) {
    case "text":
      return stackDiffText(d, notes);
    case "markdown":
      return stackDiffMarkdown(d, notes);
    case "json":
      return `${JSON.stringify({ ...d, notes }, null, 2)}\n`;
  }
}
