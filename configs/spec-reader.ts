/**
 * A small reader over untyped stack config that collects every error instead of stopping at the first,
 * so a user fixes a stack file in one round. Each error names the key, the value and what is allowed.
 */
import { parseBytes, parseDuration } from "./units";

export interface SpecIssue {
  readonly key: string;
  readonly message: string;
}

export class SpecError extends Error {
  constructor(
    readonly stackName: string,
    readonly issues: readonly SpecIssue[],
  ) {
    super(
      `stack "${stackName}" has ${issues.length} configuration error${issues.length === 1 ? "" : "s"}:\n` +
        issues.map((i) => `  - ${i.message}`).join("\n"),
    );
    this.name = "SpecError";
  }
}

export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** Levenshtein distance, for "did you mean" on unknown keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length];
}

export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

type Obj = Readonly<Record<string, unknown>>;

export class SpecReader {
  readonly issues: SpecIssue[] = [];

  fail(key: string, message: string): void {
    this.issues.push({ key, message });
  }

  /** A nested mapping; unknown keys are reported with a suggestion. */
  section(parent: Obj, key: string, path: string, known: readonly string[]): Obj {
    const value = this.mapping(parent, key, path, `keys ${known.join(", ")}`);
    this.unknownKeys(value, path, known);
    return value;
  }

  /** A nested mapping whose keys are checked by the caller (e.g. PostgreSQL setting names). */
  mapping(parent: Obj, key: string, path: string, describe: string): Obj {
    const value = parent[key];
    if (value === undefined || value === null) return {};
    if (typeof value !== "object" || Array.isArray(value)) {
      this.fail(path, `${path} is ${show(value)}; it must be a mapping with ${describe}`);
      return {};
    }
    return value as Obj;
  }

  unknownKeys(value: Obj, path: string, known: readonly string[]): void {
    for (const k of Object.keys(value)) {
      if (known.includes(k)) continue;
      const suggestion = closest(k, known);
      const where = path ? `${path}.${k}` : k;
      this.fail(
        where,
        `unknown key ${where}${suggestion ? `; did you mean ${path ? `${path}.` : ""}${suggestion}?` : ""} (known: ${known.join(", ")})`,
      );
    }
  }

  oneOf<T extends string>(obj: Obj, key: string, path: string, allowed: readonly T[], fallback: T): T {
    const value = obj[key];
    if (value === undefined) return fallback;
    if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
    const hint = typeof value === "boolean" ? " (YAML read a bare on/off/yes/no as a boolean: quote it)" : "";
    this.fail(path, `${path} is ${show(value)}; allowed: ${allowed.join(", ")}${hint}`);
    return fallback;
  }

  integer(obj: Obj, key: string, path: string, min: number, max: number, fallback: number): number {
    const value = obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      this.fail(path, `${path} is ${show(value)}; it must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  number(obj: Obj, key: string, path: string, min: number, max: number, fallback: number): number {
    const value = obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
      this.fail(path, `${path} is ${show(value)}; it must be a number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  boolean(obj: Obj, key: string, path: string, fallback: boolean): boolean {
    const value = obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") {
      this.fail(path, `${path} is ${show(value)}; it must be true or false`);
      return fallback;
    }
    return value;
  }

  string(obj: Obj, key: string, path: string, pattern: RegExp, describe: string, fallback: string): string {
    const value = obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== "string" || !pattern.test(value)) {
      this.fail(path, `${path} is ${show(value)}; it must be ${describe}`);
      return fallback;
    }
    return value;
  }

  bytes(obj: Obj, key: string, path: string, min: number, minText: string, fallback: number): number {
    const value = obj[key];
    if (value === undefined) return fallback;
    const parsed = typeof value === "string" ? parseBytes(value) : parseBytes(String(value));
    if (!parsed.ok) {
      this.fail(path, `${path} ${show(value)} ${parsed.error}`);
      return fallback;
    }
    if (parsed.value < min) {
      this.fail(path, `${path} is ${show(value)}; it must be at least ${minText}`);
      return fallback;
    }
    return parsed.value;
  }

  duration(obj: Obj, key: string, path: string, minMs: number, maxMs: number, describe: string, fallback: number): number {
    const value = obj[key];
    if (value === undefined) return fallback;
    const parsed = parseDuration(String(value));
    if (!parsed.ok) {
      this.fail(path, `${path} ${show(value)} ${parsed.error}`);
      return fallback;
    }
    if (parsed.value < minMs || parsed.value > maxMs) {
      this.fail(path, `${path} is ${show(value)}; it must be ${describe}`);
      return fallback;
    }
    return parsed.value;
  }

  list(obj: Obj, key: string, path: string): readonly unknown[] | undefined {
    const value = obj[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) {
      this.fail(path, `${path} is ${show(value)}; it must be a list`);
      return undefined;
    }
    return value;
  }
}
