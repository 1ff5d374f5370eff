/**
 * The offline equivalent of `pulumi preview`: runs the real Pulumi program (index.ts) under Pulumi's recording mocks
 * with a stack's config, and returns every resource it would register (type, name, inputs) as resources.yaml.
 * No cloud credentials, no Pulumi CLI, no engine.
 *
 * Stacks whose target is `local` are not run: that target deploys processes on the host, never resources, and their
 * resources.yaml is an empty list that says so.
 *
 * All stacks of one call run in one worker thread, one after another: Pulumi, its providers and the hook bundle
 * (components/hook-bundle.ts) are loaded and built once per call, not once per stack, which made `render --all` about
 * five times faster than a child process per stack. Each stack still gets what a `pulumi up` process of its own
 * would give it, and the same bytes (tests/unit/offline-program.test.ts):
 * - a fresh Pulumi run state (config, mocks, log error count, leak candidates): the per-run store Pulumi's Automation
 *   API uses to run inline programs one after another in one process (runtime/state.ts `withLocalStorage`);
 * - the project's own modules evaluated afresh (index.ts runs or exports the program when it is loaded), while
 *   packages under node_modules are shared, as they are between Automation API runs.
 * A worker thread, not a child process: it cannot outlive this process (Ctrl-C, a crash), `terminate()` stops it even
 * in a synchronous loop, and nothing of Pulumi's global state reaches the thread that runs the CLI.
 *
 * Secrets: every secret value the program can get hold of is a fake of its own that nothing else contains: a
 * `secure:` config value reaches the program as `offline-generated-secret-config-<key>`, marked secret; a generated
 * password (random.RandomPassword …) as `offline-generated-secret-<resource>`, returned as a secret. Every input
 * Pulumi marks secret is written as the redaction marker, and a fake found in a non-secret input (a component that
 * un-secrets a password) is redacted there and reported as a leak. (A `secure:` value handed over as the marker itself
 * would look redacted wherever it leaked: the leak list could not see configured passwords.)
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import * as yaml from "js-yaml";
import { prebuildHookBundle, shareHookBundleBuilds, stopEsbuildServices } from "../components/hook-bundle";
import { normaliseResources, resourcesYaml, type RecordedResource } from "../drift/resources";
import { UserFacingError } from "./errors";
import { projectRoot, stackFilePath } from "./stack-file";

/** Where the Pulumi program is, relative to the project. */
export const programFile = "index.ts";

/**
 * The organization `pulumi.getOrganization()` returns offline: the name Pulumi gives the single organization of a
 * self-managed (file or cloud storage) backend, since there is no Pulumi Cloud account to take one from.
 */
export const offlineOrganization = "organization";

/** Prefix of the fake values secrets get (configured and generated); any of them in a non-secret input is a leak. */
export const fakeSecretPrefix = "offline-generated-secret-";

/** How long one stack's program may take to register everything before it counts as hung. */
const defaultStackTimeoutMs = 180_000;

/** How much longer than the worker's own deadline the parent waits before it stops a worker that does not answer. */
const unresponsiveGraceMs = 5_000;

/** How much of a failed stack's output the error shows: the end, where the program's error is. */
const failureLogLines = 40;

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
  /** The fake each `secure:` value became, one per value: redacted and reported as a leak like generated ones. */
  readonly secretValues: string[];
  readonly project: string;
  readonly target: string;
}

function projectName(root: string): string {
  const doc = yaml.load(fs.readFileSync(path.join(root, "Pulumi.yaml"), "utf8")) as { name?: unknown } | null;
  if (typeof doc?.name !== "string") throw new Error(`${path.join(root, "Pulumi.yaml")} has no project name`);
  return doc.name;
}

/**
 * `{secure: …}` anywhere in a value → a fake of its own, `offline-generated-secret-config-<key>` (with `.<field>` or
 * `.<index>` for one nested deeper), pushed onto `fakes`. Only letters, digits and `._-` are kept of the key, so a
 * fake reads the same percent-encoded (a password put into a connection URL) and is still found there.
 */
function fakeSecure(value: unknown, name: string, fakes: string[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => fakeSecure(v, `${name}.${i}`, fakes));
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (Object.keys(o).length === 1 && "secure" in o) {
      const fake = `${fakeSecretPrefix}config-${name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
      fakes.push(fake);
      return fake;
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fakeSecure(v, `${name}.${k}`, fakes)]));
  }
  return value;
}

/** The stack file's whole config the way `pulumi up` would pass it, each secure value replaced by a fake of its own. */
export function programConfig(stack: string, root = projectRoot()): ProgramConfig {
  const project = projectName(root);
  const file = stackFilePath(stack, root);
  if (!fs.existsSync(file)) throw new UserFacingError(`no stack "${stack}": ${file} does not exist`);
  const doc = (yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  const secretValues: string[] = [];
  for (const [rawKey, rawValue] of Object.entries(doc.config ?? {})) {
    const key = rawKey.includes(":") ? rawKey : `${project}:${rawKey}`;
    const fakes: string[] = [];
    const value = fakeSecure(rawValue, key.startsWith(`${project}:`) ? key.slice(project.length + 1) : key, fakes);
    config[key] = typeof value === "string" ? value : JSON.stringify(value);
    if (fakes.length > 0) secretKeys.push(key);
    secretValues.push(...fakes);
  }
  const target = config[`${project}:target`] ?? "";
  return { config, secretKeys: secretKeys.sort(), secretValues: secretValues.sort(), project, target };
}

// --------------------------------------------------------------------------------------------------- the parent

/** What one stack's run of the program gives, before it becomes resources.yaml. */
export interface StackRecording {
  readonly resources: RecordedResource[];
  readonly leaks: string[];
}

/** What the worker is asked to do: these stacks, in this order, with this program. */
interface WorkerRequest {
  readonly stacks: readonly string[];
  readonly program: string;
  readonly root: string;
  readonly stackTimeoutMs: number;
  /** This module, for the worker to load once tsx is registered. */
  readonly recorder: string;
}

/** What the worker reports; after its last message ("finished" or "failed") it has nothing running any more. */
type WorkerMessage =
  | { readonly kind: "started"; readonly stack: string }
  | ({ readonly kind: "recorded"; readonly stack: string } & StackRecording)
  | { readonly kind: "finished" }
  | { readonly kind: "failed"; readonly stack: string; readonly error: string; readonly output: string };

/**
 * The worker's first lines, plain CommonJS, before any TypeScript can load. tsx is registered for the project's
 * TypeScript and nothing else: files under node_modules go to Node's own .js loader, as they do under `pulumi up`.
 * tsx reads every .js file its hook sees once more and scans it for ESM syntax; over Pulumi and its providers
 * (~1,500 files) that made loading them three to four times slower, about a second.
 *
 * Source maps are off (tsx turns them on): Pulumi takes a stack trace for every promise it tracks (runtime/
 * debuggable.ts) and every resource it registers, and mapping those frames through source maps, with caching the
 * maps of the project's modules for every stack, was about a fifth of the recording. Nothing reads those traces
 * unless a stack fails, and then workerMain runs that stack once more with source maps on for the error it reports.
 */
const workerBootstrap = `
const Module = require("node:module");
const { sep } = require("node:path");
const { workerData } = require("node:worker_threads");
const nodeJs = Module._extensions[".js"];
require(workerData.tsx);
process.setSourceMapsEnabled(false);
const tsxJs = Module._extensions[".js"];
const inPackage = sep + "node_modules" + sep;
Module._extensions[".js"] = function (module, filename) {
  return (filename.includes(inPackage) ? nodeJs : tsxJs).call(this, module, filename);
};
require(workerData.request.recorder).workerMain(workerData.request);
`;

function failure(program: string, root: string, stack: string | undefined, detail: string): UserFacingError {
  const log = detail.trim().split("\n").slice(-failureLogLines).join("\n");
  const which = stack === undefined ? "before any stack ran" : `for stack "${stack}"`;
  return new UserFacingError(
    `the Pulumi program ${path.relative(root, program) || program} failed under mocks ${which}; no resources.yaml was written:\n${log}`,
  );
}

/**
 * Runs the program for each stack in one worker thread and collects what each registered. The first failure stops
 * the worker and rejects; the worker is terminated before this settles, so no thread outlives the call.
 */
function recordInWorker(request: Omit<WorkerRequest, "recorder">): Promise<Map<string, StackRecording>> {
  const { stacks, program, root, stackTimeoutMs } = request;
  // Nothing ambient may steer the program: no PULUMI_* from the caller's shell.
  const env: Record<string, string | undefined> = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PULUMI_")));
  // esbuild's synchronous API (tsx compiling the project's TypeScript, a build by the program) would otherwise run
  // esbuild's service in a thread of esbuild's own inside the worker; terminating the worker ends that thread and
  // leaves its service process to exit unreaped, a zombie until this process exits. With "0", each synchronous call
  // runs esbuild once and waits for it; the asynchronous service the worker uses (prebuildHookBundle) it stops
  // and reaps itself (stopEsbuildServices). It costs nothing with tsx's cache warm, when nothing is compiled.
  env.ESBUILD_WORKER_THREADS = "0";
  const worker = new Worker(workerBootstrap, {
    eval: true,
    workerData: { request: { ...request, recorder: __filename }, tsx: require.resolve("tsx/cjs") },
    env,
    stdout: true,
    stderr: true,
  });
  // What the worker prints outside a stack's captured output (Node's own fatal messages): shown when it dies.
  let stray = "";
  worker.stdout.on("data", (d: Buffer) => (stray += d.toString()));
  worker.stderr.on("data", (d: Buffer) => (stray += d.toString()));

  return new Promise((resolve, reject) => {
    const results = new Map<string, StackRecording>();
    let current: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const done = () => (error ? reject(error) : resolve(results));
      worker.terminate().then(done, done);
    };
    // Per stack (and for the start-up before the first): the worker's own deadline covers a program that keeps
    // registering; this covers one that never answers again (a synchronous loop, a promise that never settles).
    const arm = () => {
      clearTimeout(timer);
      const ms = stackTimeoutMs + unresponsiveGraceMs;
      timer = setTimeout(() => finish(failure(program, root, current, `${stray}\nstill running after ${ms / 1000} s; stopped`)), ms);
    };
    arm();
    worker.on("message", (m: WorkerMessage) => {
      if (m.kind === "started") {
        current = m.stack;
        arm();
      } else if (m.kind === "recorded") {
        results.set(m.stack, { resources: m.resources, leaks: m.leaks });
      } else if (m.kind === "finished") {
        finish(results.size === stacks.length ? undefined : failure(program, root, current, `${stray}\nthe recorder's worker finished without recording every stack`));
      } else finish(failure(program, root, m.stack, `${m.output}${m.error}`));
    });
    worker.on("error", (e) => finish(failure(program, root, current, `${stray}${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)));
    worker.on("exit", (code) => {
      // Every stack recorded: what is missing is at most the worker's "finished" after its clean-up.
      if (results.size === stacks.length) return finish();
      const why =
        code === 0
          ? "the program stopped without finishing: nothing was left running, yet what Pulumi waits for never resolved (a promise that never settles?)"
          : `the recorder's worker ended with exit code ${code} (process.exit in the program?) before every stack was recorded`;
      finish(failure(program, root, current, `${stray}\n${why}`));
    });
  });
}

export interface RecordOptions {
  /** The project: Pulumi.yaml, the stack files and the program. Defaults to this checkout. */
  readonly root?: string;
  /** The program, relative to `root`. Defaults to index.ts. */
  readonly program?: string;
  /** How long one stack may run before it counts as hung and the worker is stopped. Defaults to 180 s. */
  readonly stackTimeoutMs?: number;
}

/**
 * Every stack's resources.yaml, or `no-program` when index.ts does not exist (the only case the step is skipped).
 * Any failure of the program for any stack throws: no partial output.
 */
export async function recordStacks(stacks: readonly string[], opts: RecordOptions = {}): Promise<OfflineRender> {
  const root = opts.root ?? projectRoot();
  const program = path.resolve(root, opts.program ?? programFile);
  if (!fs.existsSync(program)) {
    return { status: "no-program", message: `${path.relative(root, program) || program} not found: resources.yaml is not rendered` };
  }
  const targets = new Map(stacks.map((stack) => [stack, programConfig(stack, root).target]));
  // Target local deploys real processes on the host (`pgstack local`), never Pulumi resources.
  const toRun = [...new Set(stacks.filter((stack) => targets.get(stack) !== "local"))];
  const stackTimeoutMs = opts.stackTimeoutMs ?? defaultStackTimeoutMs;
  const recorded = toRun.length > 0 ? await recordInWorker({ stacks: toRun, program, root, stackTimeoutMs }) : new Map<string, StackRecording>();
  const results = new Map<string, OfflineStackResult>();
  for (const stack of stacks) {
    const target = targets.get(stack) ?? "";
    const { resources, leaks } = recorded.get(stack) ?? { resources: [], leaks: [] };
    results.set(stack, { stack, target, resources, leaks, yaml: resourcesYaml(resources, { stack, target }) });
  }
  return { status: "recorded", stacks: results };
}

// ---------------------------------------------------------------------------------------------------- the worker

type Pulumi = typeof import("@pulumi/pulumi");

/**
 * Pulumi's per-run state. Internal to @pulumi/pulumi (pinned in package.json), so each piece is checked for and its
 * absence is an error that says what is missing, never a run that quietly shares one store between stacks.
 */
interface PulumiRunState {
  withLocalStorage<T>(run: () => T): T;
  leakedPromises(): [Set<unknown>, string];
}

function pulumiRunState(): PulumiRunState {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const state = require("@pulumi/pulumi/runtime/state") as Partial<PulumiRunState>;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const debuggable = require("@pulumi/pulumi/runtime/debuggable") as Partial<PulumiRunState>;
  if (typeof state.withLocalStorage !== "function" || typeof debuggable.leakedPromises !== "function") {
    throw new Error(
      "@pulumi/pulumi no longer has runtime/state withLocalStorage and runtime/debuggable leakedPromises; the offline recorder cannot give each stack its own run",
    );
  }
  return { withLocalStorage: state.withLocalStorage, leakedPromises: debuggable.leakedPromises };
}

/**
 * Three of @pulumi/pulumi's own requires are changed in the recorder's worker, all of them for its closure serialiser
 * (JavaScript functions turned into code: dynamic providers, `pulumi.runtime.serializeFunction`), which a program may
 * use and ours does not:
 * - typescript (9 MB) and npm's Arborist load when Pulumi loads, yet only the serialiser uses them; they were two
 *   thirds of the ~0.9 s Pulumi took to load. They get a stand-in that loads the real module on first use.
 * - the serialiser requires every built-in module to know them by identity, and trace_events cannot be loaded in a
 *   worker thread (ERR_TRACE_EVENTS_UNAVAILABLE); it gets an empty placeholder, which no closure can capture here.
 * Nothing but requires made by @pulumi/pulumi's files is affected.
 */
const deferredPulumiDependencies: readonly string[] = ["typescript", "@npmcli/arborist"];

function adaptPulumiRequires(): void {
  type Load = (request: string, parent: { filename?: string } | undefined, isMain: boolean) => object;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Module = require("node:module") as unknown as { _load: Load };
  const load = Module._load;
  const pulumiDir = `${path.sep}node_modules${path.sep}@pulumi${path.sep}pulumi${path.sep}`;
  Module._load = function (this: unknown, request, parent, isMain) {
    if (!parent?.filename?.includes(pulumiDir)) return load.call(this, request, parent, isMain);
    if (request === "trace_events") return {};
    if (!deferredPulumiDependencies.includes(request)) return load.call(this, request, parent, isMain);
    let real: object | undefined;
    const module = () => (real ??= load.call(this, request, parent, isMain));
    return new Proxy(
      {},
      {
        // TypeScript's __importStar copies every key of a module that does not say it is an ES module, which would
        // load it at once; saying so returns the stand-in itself, whose properties are the real module's.
        get: (_, key) => (key === "__esModule" && real === undefined ? true : Reflect.get(module(), key)),
        has: (_, key) => Reflect.has(module(), key),
        ownKeys: () => Reflect.ownKeys(module()),
        getOwnPropertyDescriptor: (_, key) => {
          const d = Reflect.getOwnPropertyDescriptor(module(), key);
          return d && { ...d, configurable: true };
        },
      },
    );
  };
}

/**
 * Drops the project's own modules (everything outside node_modules) from the module cache, so the next stack
 * evaluates index.ts and everything it imports afresh, as its own `pulumi up` process would.
 */
function forgetProjectModules(): void {
  for (const file of Object.keys(require.cache)) {
    if (!file.split(path.sep).includes("node_modules")) delete require.cache[file];
  }
}

/**
 * Everything this thread writes to stdout and stderr, kept instead of shown: a stack's output appears only in the
 * error when that stack fails (the program's warnings are the renderers' warnings, which the CLI prints itself).
 */
function captureOutput(): { take(): string } {
  let text = "";
  for (const stream of [process.stdout, process.stderr]) {
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
      const callback = rest.find((r): r is () => void => typeof r === "function");
      callback?.();
      return true;
    }) as typeof stream.write;
  }
  return {
    take() {
      const out = text;
      text = "";
      return out;
    },
  };
}

function errorText(error: unknown, pulumi: Pulumi): string {
  // A RunError is the program's message for people (bad config): Pulumi shows it without a stack trace too.
  if (pulumi.RunError.isInstance(error)) return error.message;
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

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
  // A PEM block around a marker instead of DER: what a fake key or certificate looks like offline.
  const offlinePem = (label: string, marker: string) => `-----BEGIN ${label}-----\n${marker}\n-----END ${label}-----\n`;
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
    case "pulumi:pulumi:StackReference":
      // Offline there is no earlier deployment to read: the referenced stack has no outputs, as before a first `pulumi up`.
      state.outputs = {};
      state.secretOutputNames = [];
      break;
    case "docker:index/remoteImage:RemoteImage":
      state.imageId = `${String(inputs.name)}@offline`;
      state.repoDigest = `${String(inputs.name)}@offline`;
      break;
    // A build of images/: what `docker.Image` reports without a push (the local image ID) or after one (the registry
    // digest), both unknowable offline; the tag is content-addressed, so the marker still changes with the image.
    case "docker:index/image:Image":
      state.repoDigest = `${String(inputs.imageName)}@offline`;
      break;
    // @pulumi/tls: fixed, obviously fake PEMs named after the resource (same bytes on every render); private keys are
    // fakes of their own, returned as secrets, so a key that reached a non-secret input is redacted and reported.
    case "tls:index/privateKey:PrivateKey":
      // The bare markers too: a key that reached an input in another wrapping is still found.
      fakes.push(fake, `${fake}-pkcs8`, `${fake}-openssh`);
      state.privateKeyPem = secretFake(offlinePem("EC PRIVATE KEY", fake));
      state.privateKeyPemPkcs8 = secretFake(offlinePem("PRIVATE KEY", `${fake}-pkcs8`));
      state.privateKeyOpenssh = secretFake(offlinePem("OPENSSH PRIVATE KEY", `${fake}-openssh`));
      state.publicKeyPem = offlinePem("PUBLIC KEY", `offline-public-key-${name}`);
      state.publicKeyOpenssh = `ecdsa-sha2-nistp256 offline-public-key-${name}\n`;
      state.publicKeyFingerprintMd5 = "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00";
      state.publicKeyFingerprintSha256 = "SHA256:offline";
      break;
    case "tls:index/certRequest:CertRequest":
      state.certRequestPem = offlinePem("CERTIFICATE REQUEST", `offline-certificate-request-${name}`);
      break;
    case "tls:index/selfSignedCert:SelfSignedCert":
    case "tls:index/locallySignedCert:LocallySignedCert":
      state.certPem = offlinePem("CERTIFICATE", `offline-certificate-${name}`);
      state.validityStartTime = "2000-01-01T00:00:00Z";
      state.validityEndTime = "2000-01-01T00:00:00Z";
      state.readyForRenewal = false;
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

/**
 * Runs the program once for one stack in this thread, in a Pulumi run store of its own, and returns what it
 * registered, normalised. The worker calls it for each stack; a test can call it in a process of its own.
 */
export async function recordStackHere(stack: string, program: string, root: string, timeoutMs = defaultStackTimeoutMs): Promise<StackRecording> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as Pulumi;
  const runState = pulumiRunState();
  forgetProjectModules();
  return runState.withLocalStorage(async () => {
    const failures: string[] = [];
    const onFailure = (e: unknown) => failures.push(errorText(e, pulumi));
    process.on("unhandledRejection", onFailure);
    process.on("uncaughtException", onFailure);
    try {
      return await recordInStore(stack, program, root, timeoutMs, pulumi, runState, failures);
    } finally {
      process.off("unhandledRejection", onFailure);
      process.off("uncaughtException", onFailure);
    }
  });
}

async function recordInStore(
  stack: string,
  program: string,
  root: string,
  timeoutMs: number,
  pulumi: Pulumi,
  runState: PulumiRunState,
  failures: string[],
): Promise<StackRecording> {
  const { config, secretKeys, secretValues, project } = programConfig(stack, root);
  const recorded: { type: string; name: string; inputs: unknown }[] = [];
  const pending: Promise<void>[] = [];
  // Every fake the program may hold: the configured secrets' now, the generated passwords' as the mocks make them.
  const fakes: string[] = [...secretValues];
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
    offlineOrganization,
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
  const deadline = Date.now() + timeoutMs;
  let stableRounds = 0;
  let last = -1;
  while (stableRounds < 3) {
    if (Date.now() > deadline) throw new StackTimeout(`the program kept registering resources for ${timeoutMs / 1000} s (${recorded.length} so far)`);
    await settle();
    stableRounds = recorded.length === last ? stableRounds + 1 : 0;
    last = recorded.length;
  }
  await pulumi.runtime.disconnect();
  if (pulumi.log.hasErrors()) failures.push("the program logged errors (see above)");
  else {
    // What a `pulumi up` process checks as it exits (runtime/debuggable.ts): a promise of Pulumi's still pending.
    const [leaked, message] = runState.leakedPromises();
    if (leaked.size > 0) failures.push(message);
  }
  if (failures.length > 0) throw new Error(failures.join("\n"));

  const leaks: string[] = [];
  const resources = normaliseResources(recorded as RecordedResource[], {
    projectRoot: root,
    // Longest first, so a fake that contains another is redacted whole.
    secretValues: [...new Set(fakes)].sort((a, b) => b.length - a.length),
    onLeak: (resource, where) => leaks.push(`${resource} ${where}`),
  });
  return { resources, leaks: [...new Set(leaks)].sort() };
}

/** A stack that ran out of time: running it again for a better error message would only take as long again. */
class StackTimeout extends Error {
  override readonly name = "StackTimeout";
}

/**
 * What a failed stack's error says, with its stack trace in the TypeScript's own lines: the stack runs once more with
 * source maps on (see workerBootstrap), which costs a second only when something already failed. If that run passes,
 * the first error is reported as it was, unmapped, and says so.
 */
async function failureReport(
  stack: string,
  request: WorkerRequest,
  first: unknown,
  pulumi: Pulumi,
  output: { take(): string },
): Promise<{ error: string; output: string }> {
  const firstOutput = output.take();
  if (first instanceof StackTimeout) return { error: errorText(first, pulumi), output: firstOutput };
  process.setSourceMapsEnabled(true);
  try {
    await recordStackHere(stack, request.program, request.root, request.stackTimeoutMs);
  } catch (again) {
    return { error: errorText(again, pulumi), output: output.take() };
  }
  const unmapped =
    "(this trace is not mapped to the TypeScript lines: the stack passed when it ran again with source maps, so its failure depends on more than the program and the stack's config)";
  return { error: `${errorText(first, pulumi)}\n${unmapped}`, output: firstOutput };
}

/**
 * The worker's body (see workerBootstrap): each stack in turn, reported to the parent as it goes. esbuild's service
 * is stopped and reaped as soon as the hook bundle is built, and again (one the program started) before the last
 * message, after which the parent terminates the worker: no process of the worker's outlives recordStacks.
 */
export async function workerMain(request: WorkerRequest): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { parentPort } = require("node:worker_threads") as typeof import("node:worker_threads");
  if (!parentPort) throw new Error("workerMain runs in the recorder's worker thread only");
  const post = (m: WorkerMessage) => parentPort.postMessage(m);
  const output = captureOutput();
  shareHookBundleBuilds();
  // esbuild bundles in a process of its own, on the other core, while this thread loads Pulumi.
  const bundled = prebuildHookBundle(request.root);
  adaptPulumiRequires();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as Pulumi;
  await bundled;
  await stopEsbuildServices();
  for (const stack of request.stacks) {
    post({ kind: "started", stack });
    try {
      const recording = await recordStackHere(stack, request.program, request.root, request.stackTimeoutMs);
      output.take();
      post({ kind: "recorded", stack, ...recording });
    } catch (error) {
      const report = await failureReport(stack, request, error, pulumi, output);
      await stopEsbuildServices();
      post({ kind: "failed", stack, ...report });
      return;
    }
  }
  await stopEsbuildServices();
  post({ kind: "finished" });
}
