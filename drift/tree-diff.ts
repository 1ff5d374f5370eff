/**
 * Plain data compared path by path, the way a reviewer names a value:
 * `spec.template.spec.containers[name=postgres].resources.limits.hugepages-2Mi`. Lists of named things (containers,
 * env, volumes, alert rules) are matched by name, not position, so inserting one does not "change" all that follow.
 */

export interface PathChange {
  readonly path: string;
  /** Absent when the path was added. */
  readonly old?: unknown;
  /** Absent when the path was removed. */
  readonly new?: unknown;
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isPrimitive(v: unknown): boolean {
  return v === null || (typeof v !== "object" && typeof v !== "function");
}

/** A path segment for an object key: bare when it reads unambiguously, else `["…"]`. */
export function keySegment(key: string, first: boolean): string {
  if (/^[A-Za-z_][\w-]*$/.test(key)) return first ? key : `.${key}`;
  return `[${JSON.stringify(key)}]`;
}

const identityKeys = ["name", "indexName", "record", "alert", "file", "containerPath", "mountPath", "key", "path", "containerPort", "port"] as const;

/** How an element of a list of objects is named in a path (`name=postgres`), or undefined. */
function itemLabel(item: unknown): string | undefined {
  if (!isObject(item)) return undefined;
  for (const key of identityKeys) {
    const value = item[key];
    if (typeof value !== "string" && typeof value !== "number") continue;
    let label = `${key}=${value}`;
    // Alerts repeat their name per severity (warning and critical): the pair names the rule.
    const labels = item.labels;
    if (key === "alert" && isObject(labels) && typeof labels.severity === "string") label += `,severity=${labels.severity}`;
    return label;
  }
  return undefined;
}

/** Labels for every element, when each has one and they are unique; else undefined (compare by position). */
function labelsOf(items: readonly unknown[]): string[] | undefined {
  const labels = items.map(itemLabel);
  if (labels.some((l) => l === undefined)) return undefined;
  if (new Set(labels).size !== labels.length) return undefined;
  return labels as string[];
}

/** `NAME=value` strings (Docker env): matched by NAME. */
function envNames(items: readonly unknown[]): string[] | undefined {
  const names = items.map((i) => (typeof i === "string" ? /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(i)?.[1] : undefined));
  if (names.some((n) => n === undefined) || new Set(names).size !== names.length) return undefined;
  return names as string[];
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

/** Every path whose value differs between `a` (old) and `b` (new), in a stable order. */
export function treeChanges(a: unknown, b: unknown, path = ""): PathChange[] {
  if (deepEqual(a, b)) return [];
  if (a === undefined) return [{ path, new: b }];
  if (b === undefined) return [{ path, old: a }];
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => treeChanges(a[k], b[k], path + keySegment(k, path === "")));
  }
  if (Array.isArray(a) && Array.isArray(b)) return arrayChanges(a, b, path);
  return [{ path, old: a, new: b }];
}

function arrayChanges(a: readonly unknown[], b: readonly unknown[], path: string): PathChange[] {
  if (a.every(isPrimitive) && b.every(isPrimitive)) {
    const an = envNames(a);
    const bn = envNames(b);
    if (an && bn && a.length > 0 && b.length > 0) return keyedChanges(a, an, b, bn, path, (n) => `[${n}]`);
    return [{ path, old: a, new: b }];
  }
  const al = labelsOf(a);
  const bl = labelsOf(b);
  if (al && bl) return keyedChanges(a, al, b, bl, path, (l) => `[${l}]`);
  const out: PathChange[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) out.push(...treeChanges(a[i], b[i], `${path}[${i}]`));
  return out;
}

function keyedChanges(
  a: readonly unknown[],
  al: readonly string[],
  b: readonly unknown[],
  bl: readonly string[],
  path: string,
  segment: (label: string) => string,
): PathChange[] {
  const byA = new Map(al.map((l, i) => [l, a[i]]));
  const byB = new Map(bl.map((l, i) => [l, b[i]]));
  // Old order first, then what is new, in its own order: the report reads like the file.
  const order = [...al, ...bl.filter((l) => !byA.has(l))];
  const out = order.flatMap((l) => treeChanges(byA.get(l), byB.get(l), path + segment(l)));
  // Same elements, another order: say so rather than report nothing.
  const common = al.filter((l) => byB.has(l));
  const commonB = bl.filter((l) => byA.has(l));
  if (out.length === 0 && common.join("\n") !== commonB.join("\n")) out.push({ path: `${path} (order)`, old: common, new: commonB });
  return out;
}
