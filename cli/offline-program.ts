/**
 * The offline equivalent of `pulumi preview`: runs the real Pulumi program (index.ts) under Pulumi's recording mocks
 * with a stack's config, and returns every resource it would register (type, name, inputs) as resources.yaml.
 * No cloud credentials, no Pulumi CLI, no engine.
 *
 * Stacks whose target is `local` are not run: that target deploys processes on the host, never resources, and their
 * resources.yaml is an empty list that says so.
 *
 * Each stack runs in a child process (`node --require tsx/cjs cli/offline-program.ts …`): Pulumi's runtime state
 * (mocks, config, the resource queue) is global to a process, so two stacks in one process would mix.
 *
 * Secrets: `secure:` config values reach the program as the redaction marker and marked secret; generated passwords
 * (random.RandomPassword …) get fixed fake values returned as secrets; every input Pulumi marks secret is written as
 * the marker, and a fake value found in a non-secret input is redacted and reported as a leak.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { normaliseResources, redactionMarker, resourcesYaml, type RecordedResource } from "../drift/resources";
import { UserFacingError } from "./errors";
import { projectRoot, stackFilePath } from "./stack-file";

/** Where the Pulumi program is, relative to the project. */
export const programFile = "index.ts";

/** Prefix of the fake values generated passwords get; any of them in a non-secret input is a leak. */
export const fakeSecretPrefix = "offline-generated-secret-";

/** How long one stack's program may take to register everything before it counts as hung. */
const childTimeoutMs = 180_000;

export interface OfflineStackResult {
  readonly stack: string;
  readonly target: string;
  readonly resources: readonly RecordedResource[];
  /** resources.yaml for this stack. */
  readonly yaml: string;
  /** `resource path` of each non-secret input a secret value reached (redacted in `yaml`). */
  readonly leaks: readonly string[];
}

export type OfflineRender =
  | { readonly status: "recorded"; readonly stacks: ReadonlyMap<string, OfflineStackResult> }
  | { readonly status: "no-program"; readonly message: string };

// ------------------------------------------------------------------------------------------------- stack config

export interface ProgramConfig {
  /** `project:key` → the value as the Pulumi CLI hands it to a program: strings as they are, the rest as JSON. */
  readonly config: Record<string, string>;
  /** Keys whose value held a `secure:` value; the program's config.getSecret/requireSecret returns a secret. */
  readonly secretKeys: string[];
  readonly project: string;
  readonly target: string;
}

function projectName(root: string): string {
  const doc = yaml.load(fs.readFileSync(path.join(root, "Pulumi.yaml"), "utf8")) as { name?: unknown } | null;
  if (typeof doc?.name !== "string") throw new Error(`${path.join(root, "Pulumi.yaml")} has no project name`);
  return doc.name;
}

/** `{secure: …}` anywhere in a value → the marker; reports whether one was found. */
function redactSecure(value: unknown): { value: unknown; secret: boolean } {
  if (Array.isArray(value)) {
    const items = value.map(redactSecure);
    return { value: items.map((i) => i.value), secret: items.some((i) => i.secret) };
  }
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (Object.keys(o).length === 1 && "secure" in o) return { value: redactionMarker, secret: true };
    let secret = false;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      const r = redactSecure(v);
      out[k] = r.value;
      secret ||= r.secret;
    }
    return { value: out, secret };
  }
  return { value, secret: false };
}

/** The stack file's whole config the way `pulumi up` would pass it, secrets replaced by the redaction marker. */
export function programConfig(stack: string, root = projectRoot()): ProgramConfig {
  const project = projectName(root);
  const file = stackFilePath(stack, root);
  if (!fs.existsSync(file)) throw new UserFacingError(`no stack "${stack}": ${file} does not exist`);
  const doc = (yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [rawKey, rawValue] of Object.entries(doc.config ?? {})) {
    const key = rawKey.includes(":") ? rawKey : `${project}:${rawKey}`;
    const { value, secret } = redactSecure(rawValue);
    config[key] = typeof value === "string" ? value : JSON.stringify(value);
    if (secret) secretKeys.push(key);
  }
  const target = config[`${project}:target`] ?? "";
  return { config, secretKeys: secretKeys.sort(), project, target };
}

// --------------------------------------------------------------------------------------------------- the parent

interface ChildOutput {
  readonly resources: RecordedResource[];
  readonly leaks: string[];
}

function runChild(stack: string, program: string, root: string): Promise<ChildOutput> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-offline-"));
  const out = path.join(dir, "result.json");
  // Nothing ambient may steer the program: no PULUMI_* from the caller's shell.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PULUMI_")));
  const args = ["--require", require.resolve("tsx/cjs"), __filename, "--child", stack, program, root, out];
  return new Promise<ChildOutput>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), childTimeoutMs + 10_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      try {
        if (code !== 0) {
          const log = `${stderr}${stdout}`.trim().split("\n").slice(-40).join("\n");
          reject(
            new UserFacingError(
              `the Pulumi program ${path.relative(root, program) || program} failed under mocks for stack "${stack}" ` +
                `(exit ${code ?? signal}); no resources.yaml was written:\n${log}`,
            ),
          );
          return;
        }
        resolve(JSON.parse(fs.readFileSync(out, "utf8")) as ChildOutput);
      } catch (e) {
        reject(e);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/**
 * Every stack's resources.yaml, or `no-program` when index.ts does not exist (the only case the step is skipped).
 * Any failure of the program for any stack throws: no partial output.
 */
export async function recordStacks(stacks: readonly string[], opts: { root?: string; program?: string } = {}): Promise<OfflineRender> {
  const root = opts.root ?? projectRoot();
  const program = path.resolve(root, opts.program ?? programFile);
  if (!fs.existsSync(program)) {
    return { status: "no-program", message: `${path.relative(root, program) || program} not found: resources.yaml is not rendered` };
  }
  const results = await Promise.all(
    stacks.map(async (stack): Promise<OfflineStackResult> => {
      const { target } = programConfig(stack, root);
      // Target local deploys real processes on the host (`pgstack local`), never Pulumi resources.
      if (target === "local") return { stack, target, resources: [], leaks: [], yaml: resourcesYaml([], { stack, target }) };
      const out = await runChild(stack, program, root);
      return { stack, target, resources: out.resources, leaks: out.leaks, yaml: resourcesYaml(out.resources, { stack, target }) };
    }),
  );
  return { status: "recorded", stacks: new Map(results.map((r) => [r.stack, r])) };
}

// ---------------------------------------------------------------------------------------------------- the child

/** Fixed values for the outputs a program reads from resources the mocks cannot compute (generated passwords, ids). */
function mockState(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
  secret: (v: string) => unknown,
  fakes: string[],
): Record<string, unknown> {
  const state: Record<string, unknown> = { ...inputs };
  const fake = `${fakeSecretPrefix}${name}`;
  const secretFake = (v: string) => {
    fakes.push(v);
    return secret(v);
  };
  switch (type) {
    case "random:index/randomPassword:RandomPassword":
      state.result = secretFake(fake);
      state.bcryptHash = secretFake(`${fake}-bcrypt`);
      break;
    case "random:index/randomBytes:RandomBytes":
      state.base64 = secretFake(Buffer.from(fake).toString("base64"));
      state.hex = secretFake(Buffer.from(fake).toString("hex"));
      break;
    case "random:index/randomString:RandomString":
      state.result = `offline-random-string-${name}`;
      break;
    case "random:index/randomId:RandomId":
      state.hex = Buffer.from(name).toString("hex");
      state.b64Std = Buffer.from(name).toString("base64");
      state.b64Url = Buffer.from(name).toString("base64url");
      state.dec = "0";
      break;
    case "random:index/randomUuid:RandomUuid":
      state.result = "00000000-0000-4000-8000-000000000000";
      break;
    case "random:index/randomInteger:RandomInteger":
      state.result = inputs.min ?? 0;
      break;
    case "docker:index/remoteImage:RemoteImage":
      state.imageId = `${String(inputs.name)}@offline`;
      state.repoDigest = `${String(inputs.name)}@offline`;
      break;
  }
  // Kubernetes auto-names objects without metadata.name (name + random suffix); offline, the logical name.
  if (type.startsWith("kubernetes:")) {
    const metadata = (inputs.metadata ?? {}) as Record<string, unknown>;
    if (metadata.name === undefined) state.metadata = { ...metadata, name };
  }
  return state;
}

/** Assets, archives and resource references as plain, stable data (their paths relative to the project). */
async function plainInputs(value: unknown, pulumi: typeof import("@pulumi/pulumi"), root: string, depth = 0): Promise<unknown> {
  if (depth > 64) return "[too deep]";
  if (pulumi.asset.Asset.isInstance(value)) {
    const a = value as unknown as { path?: Promise<string>; text?: Promise<string>; uri?: Promise<string> };
    if (a.path) return { asset: { path: path.relative(root, path.resolve(root, await a.path)) } };
    if (a.text) return { asset: { text: await a.text } };
    if (a.uri) return { asset: { uri: await a.uri } };
  }
  if (pulumi.asset.Archive.isInstance(value)) {
    const a = value as unknown as { path?: Promise<string>; uri?: Promise<string>; assets?: Promise<Record<string, unknown>> };
    if (a.path) return { archive: { path: path.relative(root, path.resolve(root, await a.path)) } };
    if (a.uri) return { archive: { uri: await a.uri } };
    if (a.assets) return { archive: { assets: await plainInputs(await a.assets, pulumi, root, depth + 1) } };
  }
  if (pulumi.Resource.isInstance(value)) {
    const r = value as unknown as { __pulumiType?: string; __name?: string };
    return `[resource ${r.__pulumiType ?? "?"} ${r.__name ?? "?"}]`;
  }
  if (Array.isArray(value)) return Promise.all(value.map((v) => plainInputs(v, pulumi, root, depth + 1)));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await plainInputs(v, pulumi, root, depth + 1);
    return out;
  }
  return value;
}

/** Every Output reachable from the program's exports, awaited, so applies that register resources have run. */
async function awaitExports(value: unknown, pulumi: typeof import("@pulumi/pulumi"), depth = 0): Promise<void> {
  if (depth > 8 || value === null || value === undefined) return;
  if (pulumi.Output.isInstance(value)) {
    await new Promise<void>((resolve) => (value as import("@pulumi/pulumi").Output<unknown>).apply(() => resolve()));
    return;
  }
  if (pulumi.Resource.isInstance(value)) return;
  if (value instanceof Promise) {
    await awaitExports(await value, pulumi, depth + 1);
    return;
  }
  if (typeof value === "object") for (const v of Object.values(value)) await awaitExports(v, pulumi, depth + 1);
}

async function childMain(stack: string, program: string, root: string, out: string): Promise<void> {
  const failures: string[] = [];
  process.on("unhandledRejection", (e) => failures.push(e instanceof Error ? (e.stack ?? e.message) : String(e)));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  const { config, secretKeys, project } = programConfig(stack, root);
  const recorded: { type: string; name: string; inputs: unknown }[] = [];
  const pending: Promise<void>[] = [];
  const fakes: string[] = [];
  pulumi.runtime.setAllConfig(config, secretKeys);
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const entry = { type: args.type, name: args.name, inputs: {} as unknown };
        recorded.push(entry);
        pending.push(plainInputs(args.inputs, pulumi, root).then((inputs) => void (entry.inputs = inputs)));
        return { id: `${args.name}-id`, state: mockState(args.type, args.name, args.inputs, (v) => pulumi.secret(v), fakes) };
      },
      call(args) {
        return args.inputs;
      },
    },
    project,
    stack,
    false,
  );

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  let exported: unknown = require(program);
  if (typeof exported === "function") exported = await (exported as () => unknown)();
  else if (exported && typeof exported === "object" && typeof (exported as { default?: unknown }).default === "function") {
    exported = await ((exported as { default: () => unknown }).default)();
  }

  // Registrations arrive asynchronously and applies may register more: wait until the count holds still.
  const settle = async () => {
    await awaitExports(exported, pulumi);
    const wait = (pulumi.runtime as unknown as { waitForRPCs?: () => Promise<void> }).waitForRPCs;
    if (wait) await wait();
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    await Promise.all(pending);
  };
  const deadline = Date.now() + childTimeoutMs;
  let stableRounds = 0;
  let last = -1;
  while (stableRounds < 3) {
    if (Date.now() > deadline) throw new Error(`the program kept registering resources for ${childTimeoutMs / 1000} s (${recorded.length} so far)`);
    await settle();
    stableRounds = recorded.length === last ? stableRounds + 1 : 0;
    last = recorded.length;
  }
  await pulumi.runtime.disconnect();
  if (pulumi.log.hasErrors()) failures.push("the program logged errors (see above)");
  if (failures.length > 0) throw new Error(failures.join("\n"));

  const leaks: string[] = [];
  const resources = normaliseResources(recorded as RecordedResource[], {
    projectRoot: root,
    // Longest first, so a fake that contains another is redacted whole.
    secretValues: [...new Set(fakes)].sort((a, b) => b.length - a.length),
    onLeak: (resource, where) => leaks.push(`${resource} ${where}`),
  });
  fs.writeFileSync(out, JSON.stringify({ resources, leaks: [...new Set(leaks)].sort() }));
}

if (require.main === module && process.argv[2] === "--child") {
  const [stack, program, root, out] = process.argv.slice(3);
  childMain(stack, program, root, out).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
