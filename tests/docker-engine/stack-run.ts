/**
 * The real Pulumi program (program.ts → DockerVectorStack) run under the engine mocks: every Docker object it registers
 * is created on the real engine, and outputs flow between resources as under `pulumi up`. Used by the real-engine
 * test (tests/real/docker-stack.test.ts) and by `npm run e2e:docker` (scripts/e2e-docker.ts).
 *
 * The stack's config is its stack file's (Pulumi.<stackFile>.yaml), read as `pulumi up` would pass it, with the Docker
 * ports moved to free loopback ports: the run must not collide with a developer's own dev stack or database. The
 * stack name (`stack`) prefixes every object name, so the run's containers never take a real stack's names.
 */
import { programConfig } from "../../cli/offline-program";
import { projectRoot } from "../../cli/stack-file";
import { freeLoopbackPort } from "../../local/runtime/ports";
import { outputOf } from "../unit/components/pulumi-harness";
import { DockerEngine } from "./engine-api";
import { installEngineMocks, removeRunObjects, runLabelKey, type EngineRun } from "./engine-mocks";

export interface DockerStackRunOptions {
  /** Whose stack file the config comes from. Defaults to dev. */
  readonly stackFile?: string;
  /** The stack name the program runs as (object names: pgstack-<stack>-…). */
  readonly stack: string;
  /** Value of the label every Docker object of the run carries. */
  readonly runLabel: string;
  /** A line per step. Defaults to none. */
  readonly log?: (line: string) => void;
  /** Secret config keys of the namespace set for this run (`appPassword`), as `pulumi config set --secret` would. Defaults to none. */
  readonly secrets?: Readonly<Record<string, string>>;
}

export interface DockerStackRun {
  readonly run: EngineRun;
  /** The stack outputs as `pulumi stack output --show-secrets` prints them. */
  readonly outputs: Readonly<Record<string, unknown>>;
  /** Where the stack publishes PostgreSQL, PgBouncer and Prometheus on 127.0.0.1. */
  readonly ports: { readonly postgres: number; readonly pgbouncer: number; readonly prometheus: number };
  readonly seconds: number;
}

/**
 * Removes what an earlier engine run of this stack left (a killed test, `e2e:docker --keep`): every container, network
 * and volume named `pgstack-<stack>-…` that carries an engine-run label, whichever run's. Objects of the same names
 * without the label (a real `pulumi up` of a stack with this name) are not touched: the run then fails on the name,
 * saying so. Returns what it removed.
 */
export async function removeStaleStack(stack: string, engine = new DockerEngine()): Promise<string[]> {
  const prefix = `pgstack-${stack}`;
  const filters = JSON.stringify({ label: [runLabelKey] });
  const labels = new Set<string>();
  const ours = (name: string | undefined) => name !== undefined && (name === prefix || name.startsWith(`${prefix}-`));
  for (const c of await engine.json<{ Names: string[]; Labels: Record<string, string> }[]>("GET", "/containers/json", { query: { all: 1, filters } })) {
    if (ours(c.Names[0]?.replace(/^\//, ""))) labels.add(c.Labels[runLabelKey]);
  }
  for (const n of await engine.json<{ Name: string; Labels: Record<string, string> }[]>("GET", "/networks", { query: { filters } })) {
    if (ours(n.Name)) labels.add(n.Labels[runLabelKey]);
  }
  for (const v of (await engine.json<{ Volumes: { Name: string; Labels: Record<string, string> }[] | null }>("GET", "/volumes", { query: { filters } })).Volumes ?? []) {
    if (ours(v.Name)) labels.add(v.Labels[runLabelKey]);
  }
  const removed: string[] = [];
  for (const label of labels) removed.push(...(await removeRunObjects(engine, label, [], () => {}, { keepImages: true })));
  return removed;
}

/**
 * Installs the engine mocks and runs the program. Resolves once every resource has been created on the engine and
 * every output is known (the hook has run to completion). On failure the objects created so far stay for the caller's
 * `run.removeEverything()`: call it in a `finally`, whatever happened. `onRun` gets the run before the program starts,
 * so a caller can clean up after an interrupt.
 */
export async function runDockerStack(options: DockerStackRunOptions, onRun: (run: EngineRun) => void = () => {}): Promise<DockerStackRun> {
  const started = Date.now();
  const root = projectRoot();
  const file = programConfig(options.stackFile ?? "dev", root);
  if (file.target !== "docker") throw new Error(`stack file ${options.stackFile ?? "dev"} has target ${JSON.stringify(file.target)}; the Docker engine run needs target: docker`);
  // Three different ports: freeLoopbackPort never hands out one it handed out in the last minute.
  const ports = { postgres: await freeLoopbackPort(), pgbouncer: await freeLoopbackPort(), prometheus: await freeLoopbackPort() };
  const dockerKey = `${file.project}:docker`;
  const docker = file.config[dockerKey] === undefined ? {} : (JSON.parse(file.config[dockerKey]) as Record<string, unknown>);
  const secrets = Object.entries(options.secrets ?? {}).map(([key, value]) => [`${file.project}:${key}`, value] as const);
  const config = { ...file.config, [dockerKey]: JSON.stringify({ ...docker, ports }), ...Object.fromEntries(secrets) };
  const run = installEngineMocks({
    config,
    secretConfigKeys: [...file.secretKeys, ...secrets.map(([key]) => key)],
    project: file.project,
    stack: options.stack,
    runLabel: options.runLabel,
    log: options.log,
  });
  onRun(run);
  // Imported after the mocks are installed, as Pulumi's mock tests require of a program.
  const { program } = await import("../../program");
  // A resource the engine refused rejects its outputs, which may then never resolve: settled() names the failure.
  const outputs = await Promise.race([outputOf(await program()), run.settled().then(() => new Promise<never>(() => {}))]);
  await run.settled();
  return { run, outputs, ports, seconds: (Date.now() - started) / 1000 };
}
