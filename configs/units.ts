/**
 * Units are parsed once at the edge into bytes and milliseconds and rendered back once in PostgreSQL's own units.
 * PostgreSQL's memory units are binary (1MB = 1024 kB); so are Kubernetes' Ki/Mi/Gi. We accept both spellings.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

export const bytes = { KiB, MiB, GiB, TiB } as const;

const byteUnits: Readonly<Record<string, number>> = {
  B: 1,
  kB: KiB,
  KB: KiB,
  Ki: KiB,
  KiB: KiB,
  MB: MiB,
  Mi: MiB,
  MiB: MiB,
  GB: GiB,
  Gi: GiB,
  GiB: GiB,
  TB: TiB,
  Ti: TiB,
  TiB: TiB,
};

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** "32Gi", "256MB", "1.5GiB" → bytes. A bare number is refused: "32" could mean anything. */
export function parseBytes(text: string): ParseResult<number> {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$/.exec(text);
  if (!match) {
    if (/^\s*\d+(\.\d+)?\s*$/.test(text)) return { ok: false, error: `has no unit; write ${text.trim()}Gi` };
    return { ok: false, error: "is not a size; write a number and a unit such as 32Gi or 512MB" };
  }
  const unit = byteUnits[match[2]];
  if (unit === undefined) {
    return { ok: false, error: `has an unknown unit "${match[2]}"; use one of Ki, Mi, Gi, Ti (or kB, MB, GB, TB)` };
  }
  return { ok: true, value: Math.round(Number(match[1]) * unit) };
}

const durationUnits: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  min: 60_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** "5min", "300s", "100ms" → milliseconds. */
export function parseDuration(text: string): ParseResult<number> {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/.exec(text);
  if (!match) {
    if (/^\s*\d+\s*$/.test(text)) return { ok: false, error: `has no unit; write ${text.trim()}s or ${text.trim()}ms` };
    return { ok: false, error: "is not a duration; write a number and a unit such as 300s, 5min or 100ms" };
  }
  const unit = durationUnits[match[2]];
  if (unit === undefined) return { ok: false, error: `has an unknown unit "${match[2]}"; use ms, s, min, h or d` };
  return { ok: true, value: Math.round(Number(match[1]) * unit) };
}

/** Bytes in PostgreSQL's memory syntax, the largest unit that divides exactly: 8GB, 256MB, 64kB. */
export function pgMemory(value: number): string {
  for (const [unit, size] of [
    ["TB", TiB],
    ["GB", GiB],
    ["MB", MiB],
    ["kB", KiB],
  ] as const) {
    if (value >= size && value % size === 0) return `${value / size}${unit}`;
  }
  return `${Math.ceil(value / KiB)}kB`;
}

/** Milliseconds in PostgreSQL's time syntax: 5min, 15s, 100ms. */
export function pgDuration(ms: number): string {
  if (ms === 0) return "0";
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}min`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Bytes for people: 8 GiB, 188 MiB. */
export function humanBytes(value: number): string {
  if (value >= GiB) return `${Number((value / GiB).toFixed(1))} GiB`;
  if (value >= MiB) return `${Number((value / MiB).toFixed(1))} MiB`;
  return `${Number((value / KiB).toFixed(1))} KiB`;
}
