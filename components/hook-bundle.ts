/**
 * The post-deploy hook's code: the pgstack CLI bundled by esbuild into one CommonJS file that runs on a plain
 * `node` image (a Kubernetes ConfigMap, a Docker upload). It is a build step over cli/, not an import of it.
 * esbuild is deterministic: the same sources give the same bytes, so the bundle's hash changes only with the code.
 * It runs at `pulumi up` time, so esbuild is a runtime dependency (package.json `dependencies`), not a dev tool.
 */
import type { ChildProcess } from "node:child_process";
import { subscribe } from "node:diagnostics_channel";
import { builtinModules } from "node:module";
import * as path from "node:path";
import { build, buildSync, stop, type BuildOptions, type BuildResult, type Metafile } from "esbuild";

/** A ConfigMap holds at most 1 MiB; keep a margin for the other keys and metadata. */
export const hookBundleLimitBytes = 900 * 1024;

/**
 * Packages the hook must never carry (ARCHITECTURE.md: the bundle holds pg and the post-deploy code, not Pulumi), left
 * unresolved instead of parsed. A lazily loaded command in the hook's import graph is enough to pull in @pulumi/pulumi
 * and with it the TypeScript compiler and npm's libraries: when cli/main.ts's command table did that, esbuild parsed
 * some 1,200 files (9 MB of them typescript.js) only to drop them again, over a second of every build. External, they
 * change no byte of the output while unreachable; if code the hook runs ever imports one, the check on the output
 * below fails the build instead of shipping a require that the `node` image cannot satisfy.
 */
const neverInHook = ["@pulumi/*"];

/** pg's optional native binding is never installed; pg falls back to its JavaScript client when require fails. */
const optionalAtRunTime = new Set(["pg-native"]);

const builtins = new Set(builtinModules);

function isBuiltin(specifier: string): boolean {
  return specifier.startsWith("node:") || builtins.has(specifier) || builtins.has(specifier.split("/")[0]);
}

/** Every import the output leaves to the `node` image at run time that it does not have: `x (imported by y)`. */
export function unresolvedImports(metafile: Metafile): string[] {
  const needed = new Set<string>();
  for (const output of Object.values(metafile.outputs)) {
    for (const i of output.imports) if (i.external && !isBuiltin(i.path) && !optionalAtRunTime.has(i.path)) needed.add(i.path);
  }
  const importers = (specifier: string) =>
    Object.entries(metafile.inputs)
      .filter(([, input]) => input.imports.some((i) => i.path === specifier && i.external))
      .map(([file]) => file);
  return [...needed].sort().map((specifier) => `${specifier} (imported by ${importers(specifier).join(", ") || "?"})`);
}

/** Set by shareHookBundleBuilds: one build per project root for the rest of this thread's life. */
const sharedBuildsKey = Symbol.for("pgvector-stack:hook-bundle:shared-builds");

/**
 * esbuild's service processes started in this thread since shareHookBundleBuilds, for stopEsbuildServices. This
 * module's instance in the thread that called it holds them: the recorder reloads the project's modules for every
 * stack, but its own reference to this one stays.
 */
const esbuildServices = new Set<ChildProcess>();
let watchingSpawns = false;

/**
 * Notes a process esbuild's JavaScript API starts as its long-lived service (`esbuild --service=<version> --ping`).
 * The channel announces a process before its arguments are set; they are, by the time a microtask runs.
 */
function noteSpawn(message: unknown): void {
  const child = (message as { process?: ChildProcess } | undefined)?.process;
  if (child === undefined) return;
  queueMicrotask(() => {
    if ((child.spawnargs ?? []).some((arg) => arg.startsWith("--service="))) esbuildServices.add(child);
  });
}

/**
 * For a thread that runs the Pulumi program several times over the same sources and then ends (the offline
 * recorder's worker, cli/offline-program.ts): the bundle does not depend on the stack, so it is built once there
 * instead of once per stack. The map lives on globalThis because the recorder evaluates the project's modules,
 * this one included, afresh for every stack. A `pulumi up` or any other process never calls this and builds afresh.
 *
 * From here on the thread also notes every service process esbuild starts in it (Node's `child_process` diagnostics
 * channel sees each spawn of this thread), so that stopEsbuildServices can stop and reap them before the thread ends.
 */
export function shareHookBundleBuilds(): void {
  (globalThis as Record<symbol, unknown>)[sharedBuildsKey] ??= new Map<string, string>();
  if (!watchingSpawns) subscribe("child_process", noteSpawn);
  watchingSpawns = true;
}

/**
 * Stops esbuild's service (`esbuild.stop()`) and resolves once every service process this thread started has exited
 * and been reaped. esbuild leaves its service running, unref'd, for the next build: in a thread that ends, or is
 * terminated, before the process does, nothing would reap it any more, and it would stay a zombie until the process
 * exits and then be handed to PID 1. Waiting for its exit here, with the process ref'd meanwhile so the thread lives
 * that long, lets this thread's own event loop reap it. Only the services noted since shareHookBundleBuilds.
 */
export async function stopEsbuildServices(): Promise<void> {
  const running = [...esbuildServices].filter((child) => child.exitCode === null && child.signalCode === null);
  esbuildServices.clear();
  const exited = running.map((child) => {
    child.ref();
    return new Promise<void>((resolve) => child.once("exit", () => resolve()));
  });
  await stop();
  await Promise.all(exited);
}

function bundleOptions(root: string): BuildOptions & { metafile: true; write: false } {
  return {
    entryPoints: [path.join(root, "cli/hook-entry.ts")],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    legalComments: "none",
    write: false,
    metafile: true,
    absWorkingDir: root,
    external: [...optionalAtRunTime, ...neverInHook],
    logLevel: "silent",
  };
}

/** The bundle's text, once it is known to run on the node image and to fit its ConfigMap. */
function checkedBundle(result: BuildResult<{ metafile: true; write: false }>): string {
  const missing = unresolvedImports(result.metafile);
  if (missing.length > 0) {
    throw new Error(
      `the hook bundle would need packages the node image does not have: ${missing.join("; ")}. The hook (cli/hook-entry.ts) must not reach them.`,
    );
  }
  const text = result.outputFiles[0].text;
  if (Buffer.byteLength(text) > hookBundleLimitBytes) {
    throw new Error(`the hook bundle is ${Buffer.byteLength(text)} bytes, over the ${hookBundleLimitBytes}-byte budget that keeps its ConfigMap under 1 MiB`);
  }
  return text;
}

function sharedBuilds(): Map<string, string> | undefined {
  return (globalThis as Record<symbol, unknown>)[sharedBuildsKey] as Map<string, string> | undefined;
}

export function buildHookBundle(root = path.resolve(__dirname, "..")): string {
  const shared = sharedBuilds();
  const known = shared?.get(root);
  if (known !== undefined) return known;
  const text = checkedBundle(buildSync(bundleOptions(root)));
  shared?.set(root, text);
  return text;
}

/**
 * Starts the build in esbuild's own process and resolves when it is in the shared builds, so a thread that has
 * other work (loading Pulumi) overlaps the two; buildHookBundle then returns it. Only after shareHookBundleBuilds;
 * the thread stops esbuild's service with stopEsbuildServices once it has the bundle.
 * A failed build stores nothing and resolves: buildHookBundle builds again and throws where the program calls it.
 */
export async function prebuildHookBundle(root = path.resolve(__dirname, "..")): Promise<void> {
  const shared = sharedBuilds();
  if (shared === undefined || shared.has(root)) return;
  try {
    const text = checkedBundle(await build(bundleOptions(root)));
    shared.set(root, text);
  } catch {
    // Reported by the program's own buildHookBundle call, with the stack it belongs to.
  }
}
