/**
 * A resource's inputs as the engine mocks read them: each read is typed and checked, and every input that no code
 * read is refused at the end (`refuseUnread`), naming the resource and the input. An input the mocks silently skipped
 * would let a component claim something the engine never did.
 */

// Pulumi's wire format for a secret (@pulumi/pulumi runtime/rpc.js specialSigKey, specialSecretSig): the mock monitor
// hands each top-level input over either plain or wrapped so, secretness pushed up to the top.
export const secretSigKey = "4dabf18193072939515e22adb298388d";
export const secretSig = "1b47061264138c4ac30d75fd1eb44270";

export function isSecretWrapper(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[secretSigKey] === secretSig;
}

/** A value as Pulumi's wire format marks a secret; returned in a mock's state, the output is secret. */
export function secretWrapper(value: unknown): Record<string, unknown> {
  return { [secretSigKey]: secretSig, value };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value)}`;
}

export class ResourceInputs {
  /** The inputs without their secret wrappers. */
  readonly values: Readonly<Record<string, unknown>>;
  /** Inputs that arrived as secrets. */
  readonly secretKeys: ReadonlySet<string>;
  private readonly read = new Set<string>();

  /** `what` names the resource in every message, e.g. `docker.Container "stack-postgres-container"`. */
  constructor(
    readonly what: string,
    raw: Readonly<Record<string, unknown>>,
  ) {
    const values: Record<string, unknown> = {};
    const secrets = new Set<string>();
    for (const [key, value] of Object.entries(raw)) {
      if (value === undefined) continue;
      if (isSecretWrapper(value)) {
        secrets.add(key);
        values[key] = value.value;
      } else {
        values[key] = value;
      }
    }
    this.values = values;
    this.secretKeys = secrets;
  }

  /** The inputs as a mock's state echoes them (as the provider's state holds its inputs), secrets still secret. */
  echo(): Record<string, unknown> {
    return Object.fromEntries(Object.entries(this.values).map(([k, v]) => [k, this.secretKeys.has(k) ? secretWrapper(v) : v]));
  }

  error(message: string): Error {
    return new Error(`${this.what}: ${message}`);
  }

  has(key: string): boolean {
    return this.values[key] !== undefined && this.values[key] !== null;
  }

  /** Marks an input as handled without reading it (e.g. one that only matters to a diff, said where it is called). */
  accept(key: string): void {
    this.read.add(key);
  }

  raw(key: string): unknown {
    this.read.add(key);
    const value = this.values[key];
    return value === null ? undefined : value;
  }

  string(key: string): string | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw this.error(`input "${key}" must be a string, got ${describe(value)}`);
    return value;
  }

  requiredString(key: string): string {
    const value = this.string(key);
    if (value === undefined || value === "") throw this.error(`input "${key}" is required (the provider refuses a resource without it)`);
    return value;
  }

  number(key: string): number | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value)) throw this.error(`input "${key}" must be a number, got ${describe(value)}`);
    return value;
  }

  integer(key: string): number | undefined {
    const value = this.number(key);
    if (value !== undefined && !Number.isInteger(value)) throw this.error(`input "${key}" must be a whole number, got ${value}`);
    return value;
  }

  boolean(key: string): boolean | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== "boolean") throw this.error(`input "${key}" must be true or false, got ${describe(value)}`);
    return value;
  }

  strings(key: string): string[] | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) throw this.error(`input "${key}" must be a list of strings, got ${describe(value)}`);
    return value as string[];
  }

  objects(key: string): Record<string, unknown>[] | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.some((v) => typeof v !== "object" || v === null || Array.isArray(v))) {
      throw this.error(`input "${key}" must be a list of objects, got ${describe(value)}`);
    }
    return value as Record<string, unknown>[];
  }

  object(key: string): Record<string, unknown> | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw this.error(`input "${key}" must be an object, got ${describe(value)}`);
    return value as Record<string, unknown>;
  }

  stringMap(key: string): Record<string, string> | undefined {
    const value = this.object(key);
    if (value === undefined) return undefined;
    for (const [k, v] of Object.entries(value)) {
      if (typeof v !== "string") throw this.error(`input "${key}" must map names to strings; "${k}" is ${describe(v)}`);
    }
    return value as Record<string, string>;
  }

  /** Throws for every input no code read: the mocks do not implement it, and ignoring it would be a silent lie. */
  refuseUnread(): void {
    const unread = Object.keys(this.values)
      .filter((key) => !this.read.has(key) && this.values[key] !== null)
      .sort();
    if (unread.length > 0) {
      throw this.error(
        `${unread.map((k) => `input "${k}"`).join(", ")} ${unread.length === 1 ? "is" : "are"} not implemented by the engine mocks ` +
          `(tests/docker-engine); the provider would act on ${unread.length === 1 ? "it" : "them"}, so the run stops rather than ignore ${unread.length === 1 ? "it" : "them"}. ` +
          `Leave ${unread.length === 1 ? "it" : "them"} out or implement ${unread.length === 1 ? "it" : "them"} there.`,
      );
    }
  }
}

/** Reads the fields of one nested object (a list element) with the same checks, naming it as `what`. */
export function nested(parent: ResourceInputs, where: string, value: Record<string, unknown>): ResourceInputs {
  return new ResourceInputs(`${parent.what} ${where}`, value);
}
