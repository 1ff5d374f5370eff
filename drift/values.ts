/**
 * Setting values compared by meaning, not spelling: `1GB` = `1024MB` = 131072 × 8kB, `15min` = `900s`, `on` = `true`.
 * Sizes become bytes and durations milliseconds (configs/units.ts parses them), the way PostgreSQL reads them.
 */
import { parseBytes, parseDuration, pgDuration, pgMemory } from "../configs/units";

export type Quantity =
  | { readonly kind: "bytes"; readonly value: number }
  | { readonly kind: "ms"; readonly value: number }
  | { readonly kind: "number"; readonly value: number }
  | { readonly kind: "bool"; readonly value: boolean }
  | { readonly kind: "text"; readonly value: string };

const memoryValue = /^\s*-?\d+(\.\d+)?\s*(B|kB|MB|GB|TB|Ki|Mi|Gi|Ti|KiB|MiB|GiB|TiB)\s*$/;
const timeValue = /^\s*-?\d+(\.\d+)?\s*(us|ms|s|min|h|d)\s*$/;
const numberValue = /^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$/;
const trueWords = new Set(["on", "true", "yes"]);
const falseWords = new Set(["off", "false", "no"]);

/**
 * What a value means, read as PostgreSQL would read it in postgresql.conf. A bare number stays a number: its unit is
 * the setting's own (only the server knows it; see `liveQuantity`). Words compare case-insensitively.
 */
export function quantity(value: string): Quantity {
  if (memoryValue.test(value)) {
    const parsed = parseBytes(value.replace(/^\s*-/, ""));
    if (parsed.ok) return { kind: "bytes", value: value.trim().startsWith("-") ? -parsed.value : parsed.value };
  }
  if (timeValue.test(value)) {
    const us = /^\s*(-?\d+(?:\.\d+)?)\s*us\s*$/.exec(value);
    if (us) return { kind: "ms", value: Number(us[1]) / 1000 };
    const parsed = parseDuration(value.replace(/^\s*-/, ""));
    if (parsed.ok) return { kind: "ms", value: value.trim().startsWith("-") ? -parsed.value : parsed.value };
  }
  if (numberValue.test(value)) return { kind: "number", value: Number(value) };
  const word = value.trim().toLowerCase();
  if (trueWords.has(word)) return { kind: "bool", value: true };
  if (falseWords.has(word)) return { kind: "bool", value: false };
  return { kind: "text", value: normaliseList(value) };
}

/** Comma lists as PostgreSQL splits them: `'a, b'` = `a,b`. Quotes around the whole value are not part of it. */
function normaliseList(value: string): string {
  return value
    .trim()
    .replace(/^'(.*)'$/s, "$1")
    .split(",")
    .map((part) => part.trim().replace(/^"(.*)"$/, "$1"))
    .join(",");
}

export function sameQuantity(a: Quantity, b: Quantity): boolean {
  // 1 and on are the same boolean to PostgreSQL; PgBouncer writes its booleans as 0/1.
  const asBool = (q: Quantity): boolean | undefined =>
    q.kind === "bool" ? q.value : q.kind === "number" && (q.value === 0 || q.value === 1) ? q.value === 1 : undefined;
  if (a.kind === "bool" || b.kind === "bool") {
    const x = asBool(a);
    const y = asBool(b);
    return x !== undefined && x === y;
  }
  if (a.kind !== b.kind) return false;
  if (a.kind === "text") return a.value === b.value || a.value.toLowerCase() === (b.value as string).toLowerCase();
  return Math.abs((a.value as number) - (b.value as number)) <= 1e-9 * Math.max(1, Math.abs(a.value as number));
}

/** Two setting values mean the same thing. */
export function sameSetting(a: string, b: string): boolean {
  if (a === b) return true;
  return sameQuantity(quantity(a), quantity(b));
}

/** A quantity in PostgreSQL's own spelling, for reports: bytes as 8GB, time as 15min. */
export function formatQuantity(q: Quantity): string {
  switch (q.kind) {
    case "bytes":
      return q.value < 0 ? String(q.value) : q.value === 0 ? "0" : pgMemory(q.value);
    case "ms":
      return q.value < 0 ? String(q.value) : Number.isInteger(q.value) ? pgDuration(q.value) : `${q.value}ms`;
    case "number":
      return String(q.value);
    case "bool":
      return q.value ? "on" : "off";
    case "text":
      return q.value;
  }
}
