/** Small helpers the drift, diff and live reports share: values on one line, Markdown cells that stay cells. */
import { unifiedDiff } from "./text-diff";

export type Format = "text" | "markdown" | "json";

export const formats: readonly Format[] = ["text", "markdown", "json"];

/** Longest value shown inline; longer ones are cut with `…` (the JSON format keeps them whole). */
const inlineLimit = 160;

export function isMultiline(v: unknown): v is string {
  return typeof v === "string" && v.includes("\n");
}

/** A value on one line: strings bare (`""` when empty), lists and objects as compact JSON, absent as `(unset)`. */
export function showValue(v: unknown, absent = "(unset)"): string {
  if (v === undefined) return absent;
  if (typeof v === "string") {
    if (v === "") return '""';
    if (isMultiline(v)) return `(${v.split("\n").length} lines)`;
    return cut(v);
  }
  if (v === null) return "null";
  if (typeof v === "object") return cut(JSON.stringify(v));
  return String(v);
}

function cut(text: string): string {
  return text.length > inlineLimit ? `${text.slice(0, inlineLimit - 1)}…` : text;
}

/** old → new, or `added: v` / `removed: v`. */
export function arrow(old: unknown, next: unknown): string {
  if (old === undefined) return `(added) ${showValue(next)}`;
  if (next === undefined) return `${showValue(old)} (removed)`;
  return `${showValue(old)} → ${showValue(next)}`;
}

/** A unified diff of two multi-line values, or nothing when either is not multi-line text. */
export function multilineDiff(old: unknown, next: unknown, maxLines = 30): string[] {
  if (!isMultiline(old) && !isMultiline(next)) return [];
  const a = typeof old === "string" ? old : "";
  const b = typeof next === "string" ? next : "";
  return limitLines(unifiedDiff(a, b), maxLines);
}

export function limitLines(lines: readonly string[], max: number): string[] {
  if (lines.length <= max) return [...lines];
  return [...lines.slice(0, max), `… ${lines.length - max} more`];
}

/** Inline code in a Markdown table cell: backticks fenced safely, pipes escaped. */
export function mdCode(text: string): string {
  if (text === "") return "";
  const fence = text.includes("`") ? "``" : "`";
  const pad = text.startsWith("`") || text.endsWith("`") ? " " : "";
  return `${fence}${pad}${text.replace(/\|/g, "\\|")}${pad}${fence}`;
}

export function mdValue(v: unknown, absent = "*(unset)*"): string {
  return v === undefined ? absent : mdCode(showValue(v));
}

/** Plain text in Markdown (a sentence, a name): characters that would start markup are escaped. */
export function mdText(text: string): string {
  return text.replace(/([\\`*_[\]<>|])/g, "\\$1");
}

export function mdTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)];
}

/** A fenced block that no line of `lines` can close early. */
export function mdFence(lines: readonly string[], lang = ""): string[] {
  let fence = "```";
  while (lines.some((l) => l.startsWith(fence))) fence += "`";
  return [`${fence}${lang}`, ...lines, fence];
}
