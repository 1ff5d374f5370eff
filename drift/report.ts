/**
 * The snapshot drift report for people (text, Markdown for a pull-request comment) and tools (JSON).
 */
import type { ResourceChange } from "./resources";
import type { FileDrift, SnapshotDrift, StackDrift } from "./snapshot";
import { arrow, limitLines, mdCode, mdFence, mdTable, mdText, mdValue, multilineDiff, type Format } from "./format";

/** Rows shown per file before "… and N more" (the JSON format has them all). */
const maxRowsPerFile = 60;
/** GitHub refuses comments over 65536 characters; the Markdown report stops short of that. */
export const maxMarkdownChars = 60_000;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function changedStacks(drift: SnapshotDrift): StackDrift[] {
  return drift.stacks.filter((s) => s.change !== "unchanged");
}

function fileHeadline(f: FileDrift): string {
  if (f.change !== "changed") return `${f.file}: ${f.change} (${f.summary})`;
  switch (f.kind) {
    case "settings":
      return f.settings.length > 0 ? `${f.file}: ${plural(f.settings.length, "setting")} changed` : `${f.file}: comments or layout changed, no setting`;
    case "resources": {
      const n = (c: ResourceChange["change"]) => f.resources.filter((r) => r.change === c).length;
      const parts = (["changed", "added", "removed"] as const).filter((c) => n(c) > 0).map((c) => `${plural(n(c), "resource")} ${c}`);
      return `${f.file}: ${parts.join(", ") || "reordered"}`;
    }
    case "data":
      return `${f.file}: ${plural(f.paths.length, "value")} changed`;
    case "text":
      return `${f.file}: changed`;
  }
}

function resourceSign(change: ResourceChange["change"]): string {
  return change === "added" ? "+" : change === "removed" ? "-" : "~";
}

function more(total: number, shown: number): string[] {
  return total > shown ? [`… and ${total - shown} more`] : [];
}

// ---------------------------------------------------------------------------------------------------------- text

/** Diffs already shown for this stack: the same text change often sits in a file, a ConfigMap and a CRD. */
type Shown = Set<string>;

function onceDiff(shown: Shown, lines: readonly string[]): string[] {
  if (lines.length === 0) return [];
  const key = lines.join("\n");
  if (shown.has(key)) return ["(same change as shown above)"];
  shown.add(key);
  return [...lines];
}

function textFile(f: FileDrift, wholeStack: boolean, shown: Shown): string[] {
  const out = [`  ${fileHeadline(f)}`];
  const indent = (lines: readonly string[], n: number) => lines.map((l) => `${" ".repeat(n)}${l}`);
  if (f.change !== "changed") {
    // A file new to (or gone from) a stack that stays: what it holds. A whole new stack: the file list says enough.
    if (!wholeStack) out.push(...indent(limitLines(f.items, 20), 4));
    return out;
  }
  switch (f.kind) {
    case "settings":
      for (const s of f.settings.slice(0, maxRowsPerFile)) out.push(`    ${s.name}: ${arrow(s.old, s.new)}`);
      out.push(...indent(more(f.settings.length, maxRowsPerFile), 4), ...indent(limitLines(f.diff, 20), 4));
      break;
    case "resources":
      for (const r of f.resources.slice(0, maxRowsPerFile)) {
        out.push(`    ${resourceSign(r.change)} ${r.type} ${r.name}`);
        for (const p of r.inputs.slice(0, maxRowsPerFile)) {
          out.push(`        ${p.path}: ${arrow(p.old, p.new)}`, ...indent(onceDiff(shown, multilineDiff(p.old, p.new)), 10));
        }
        out.push(...indent(more(r.inputs.length, maxRowsPerFile), 8));
      }
      out.push(...indent(more(f.resources.length, maxRowsPerFile), 4));
      break;
    case "data":
      for (const p of f.paths.slice(0, maxRowsPerFile)) {
        out.push(`    ${p.path}: ${arrow(p.old, p.new)}`, ...indent(onceDiff(shown, multilineDiff(p.old, p.new)), 6));
      }
      out.push(...indent(more(f.paths.length, maxRowsPerFile), 4));
      break;
    case "text":
      out.push(...indent(onceDiff(shown, limitLines(f.diff, 40)), 4));
      break;
  }
  return out;
}

export function snapshotDriftText(drift: SnapshotDrift): string {
  const changed = changedStacks(drift);
  if (!drift.drift) return `no drift: ${drift.after} renders exactly ${drift.before} for ${plural(drift.stacks.length, "stack")} (${drift.stacks.map((s) => s.stack).join(", ")})\n`;
  const lines = [
    `drift: ${drift.after} renders differently from ${drift.before} in ${changed.length} of ${plural(drift.stacks.length, "stack")} (${changed.map((s) => s.stack).join(", ")})`,
    `before = ${drift.before}, after = ${drift.after}. If the change is intended, run \`pgstack render --all\` and commit rendered/.`,
  ];
  for (const s of changed) {
    lines.push("", `${s.stack}: ${s.change === "changed" ? plural(s.files.length, "file") + " changed" : `stack ${s.change}`}`);
    const shown: Shown = new Set();
    for (const f of s.files) lines.push(...textFile(f, s.change !== "changed", shown));
  }
  return `${lines.join("\n")}\n`;
}

// ------------------------------------------------------------------------------------------------------ markdown

/** Text for an HTML element (a <summary>), where Markdown escapes would show as backslashes. */
function htmlText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function mdFile(f: FileDrift, wholeStack: boolean, shown: Shown): string[] {
  const head = `**${mdText(f.file)}**: ${mdText(fileHeadline(f).slice(f.file.length + 2))}`;
  if (f.change !== "changed") {
    return f.items.length > 0 && !wholeStack ? [head, "", "<details><summary>contents</summary>", "", ...mdFence(limitLines(f.items, 200)), "", "</details>", ""] : [head, ""];
  }
  const out = [head, ""];
  const diffs: string[] = [];
  const addDiff = (title: string, lines: readonly string[]) => {
    if (lines.length === 0) return;
    const body = onceDiff(shown, lines);
    const summary = `<details><summary><code>${htmlText(title)}</code>${body.length === 1 && lines.length > 1 ? ": same change as shown above" : ""}</summary>`;
    if (body.length === 1 && lines.length > 1) diffs.push(`${summary}</details>`, "");
    else diffs.push(summary, "", ...mdFence(body, "diff"), "", "</details>", "");
  };
  switch (f.kind) {
    case "settings":
      if (f.settings.length > 0) {
        out.push(...mdTable(["setting", "before", "after"], f.settings.slice(0, maxRowsPerFile).map((s) => [mdCode(s.name), mdValue(s.old), mdValue(s.new)])));
        out.push(...more(f.settings.length, maxRowsPerFile).map((m) => `\n${m}`));
      }
      addDiff(`${f.file}: lines`, limitLines(f.diff, 40));
      break;
    case "resources": {
      const rows: string[][] = [];
      for (const r of f.resources.slice(0, maxRowsPerFile)) {
        const id = `${mdCode(r.type)} ${mdCode(r.name)}`;
        if (r.change !== "changed") rows.push([`${r.change === "added" ? "➕" : "➖"} ${id}`, `*resource ${r.change}*`, "", ""]);
        for (const p of r.inputs.slice(0, maxRowsPerFile)) {
          rows.push([id, mdCode(p.path), mdValue(p.old, "*(absent)*"), mdValue(p.new, "*(absent)*")]);
          addDiff(`${r.name} ${p.path}`, multilineDiff(p.old, p.new));
        }
        if (r.inputs.length > maxRowsPerFile) rows.push([id, `… and ${r.inputs.length - maxRowsPerFile} more inputs`, "", ""]);
      }
      out.push(...mdTable(["resource", "input", "before", "after"], rows), ...more(f.resources.length, maxRowsPerFile).map((m) => `\n${m}`));
      break;
    }
    case "data":
      out.push(...mdTable(["path", "before", "after"], f.paths.slice(0, maxRowsPerFile).map((p) => [mdCode(p.path), mdValue(p.old, "*(absent)*"), mdValue(p.new, "*(absent)*")])));
      out.push(...more(f.paths.length, maxRowsPerFile).map((m) => `\n${m}`));
      for (const p of f.paths.slice(0, maxRowsPerFile)) addDiff(p.path, multilineDiff(p.old, p.new));
      break;
    case "text":
      addDiff(`${f.file}: diff`, limitLines(f.diff, 60));
      break;
  }
  return [...out, "", ...diffs];
}

export function snapshotDriftMarkdown(drift: SnapshotDrift): string {
  const changed = changedStacks(drift);
  const lines: string[] = [];
  if (!drift.drift) {
    lines.push(
      "## pgstack drift: no drift",
      "",
      `${mdText(drift.after)} renders exactly ${mdText(drift.before)} for every stack (${drift.stacks.map((s) => mdCode(s.stack)).join(", ")}).`,
    );
    return `${lines.join("\n")}\n`;
  }
  lines.push(
    `## pgstack drift: ${changed.length} of ${plural(drift.stacks.length, "stack")} change`,
    "",
    `**Before** is ${mdText(drift.before)}, **after** is what ${mdText(drift.after)} renders. ` +
      `Stacks with a change: ${changed.map((s) => mdCode(s.stack)).join(", ")}; unchanged: ${drift.stacks.filter((s) => s.change === "unchanged").map((s) => mdCode(s.stack)).join(", ") || "none"}.`,
    "",
  );
  for (const s of changed) {
    lines.push(`### ${mdText(s.stack)}${s.change === "changed" ? "" : ` (stack ${s.change})`}`, "");
    const shown: Shown = new Set();
    for (const f of s.files) lines.push(...mdFile(f, s.change !== "changed", shown));
  }
  let text = `${lines.join("\n")}\n`;
  if (text.length > maxMarkdownChars) {
    const cutAt = text.lastIndexOf("\n", maxMarkdownChars);
    text = `${text.slice(0, cutAt)}\n\n*Report cut at ${maxMarkdownChars} characters: run \`pgstack drift\` for all of it.*\n`;
    // A cut inside a fenced block or <details> would swallow the note: close them.
    const fences = (text.match(/^`{3,}/gm) ?? []).length;
    if (fences % 2 === 1) text = `${text}\`\`\`\n`;
    const open = (text.match(/<details>/g) ?? []).length - (text.match(/<\/details>/g) ?? []).length;
    text += "</details>\n".repeat(Math.max(0, open));
  }
  return text;
}

export function formatSnapshotDrift(drift: SnapshotDrift, format: Format): string {
  switch (format) {
    case "text":
      return snapshotDriftText(drift);
    case "markdown":
      return snapshotDriftMarkdown(drift);
    case "json":
      return `${JSON.stringify(drift, null, 2)}\n`;
  }
}
