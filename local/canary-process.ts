/**
 * The canary of a local cluster as a process of its own: the rendered `pgstack canary` launch (configs/launches.ts)
 * run as `node bin/pgstack.js canary …` on this host (it needs no rootfs: Node and the pg driver are this project's),
 * started like the rig's servers — detached in its own process group, stdin ignored, stdout and stderr appended to a
 * log file, registered for the rig's exit hook — so the cluster's teardown, its exit hook and `pgstack local down`
 * end it exactly as they end PgBouncer or an exporter.
 */
import * as path from "node:path";
import type { Launch } from "../configs/launches";
import { PortInUseError, saysAddressInUse } from "./runtime/ports";
import { delay, spawnServer, type ServerProcess } from "./runtime/processes";
import { httpOk } from "./runtime/readiness";
import { trackServer, untrackServer } from "./runtime/registry";
import type { ScratchDir } from "./runtime/scratch";

/** The pgstack command this checkout runs (through tsx, no build step). */
export const pgstackBin = path.resolve(__dirname, "..", "bin", "pgstack.js");
const projectRoot = path.resolve(__dirname, "..");

export interface CanaryProcessOptions {
  /** Where its log file goes (`canary.log`). */
  readonly scratch: ScratchDir;
  /** `pgstack canary` as rendered: every argument (its listen address and interval included), run as given. */
  readonly launch: Launch;
  /** The launch's `secretEnv` filled in, variable → value: the URLs, which carry the app user's password. */
  readonly secretEnv: Readonly<Record<string, string>>;
  /** How long until /metrics answers. Defaults to 30 s (tsx compiles the CLI on a first run). */
  readonly startTimeoutMs?: number;
  /** Called with the process the moment it exists, before it is ready: the cluster records it in its state file. */
  readonly onSpawn?: (server: ServerProcess) => void;
}

export interface CanaryProcess {
  readonly port: number;
  /** Base URL; /metrics is what Prometheus scrapes. */
  readonly url: string;
  /** Host path of its log. */
  readonly logFile: string;
  readonly process: ServerProcess;
  /** SIGTERM (the canary finishes its round and closes its connections), then SIGKILL after 30 s. */
  stop(): Promise<void>;
}

/**
 * Starts `pgstack canary` on the launch's port and resolves once its /metrics answers. On failure it is stopped and
 * the error has its log; a port another process took first is a PortInUseError, so the caller can place it elsewhere.
 */
export async function startCanaryProcess(opts: CanaryProcessOptions): Promise<CanaryProcess> {
  const { launch } = opts;
  if (launch.program !== "pgstack" || launch.args[0] !== "canary") {
    throw new Error(`startCanaryProcess runs the \`pgstack canary\` launch, not ${launch.program} ${launch.args.join(" ")}`);
  }
  const missing = Object.keys(launch.secretEnv).filter((name) => opts.secretEnv[name] === undefined);
  if (missing.length > 0) throw new Error(`the canary's launch needs ${missing.join(", ")} filled in`);
  const logFile = opts.scratch.hostPathOf("canary.log");
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  const port = launch.port;
  // A clean environment, as the rig gives its servers: nothing of ours but the launch's own variables reaches it.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/", LANG: "C.UTF-8", ...launch.env, ...opts.secretEnv };
  if (process.env.TMPDIR) env.TMPDIR = process.env.TMPDIR;
  const server = await spawnServer(process.execPath, [pgstackBin, ...launch.args], {
    name: "canary",
    logFile,
    env,
    cwd: projectRoot,
    stopSignal: "SIGTERM",
    onGone: untrackServer,
  });
  trackServer(server);
  opts.onSpawn?.(server);
  // The launch listens on the placement's metrics address, loopback on this host.
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  let failure: string | undefined;
  for (;;) {
    const exit = server.exitStatus();
    if (exit !== undefined) {
      failure = `exited (${exit.code !== null ? `code ${exit.code}` : exit.signal}) before it was ready`;
      break;
    }
    if (await httpOk(`${url}/metrics`)) break;
    if (Date.now() > deadline) {
      failure = `was not ready after ${Math.round(timeoutMs / 1000)} s`;
      break;
    }
    await delay(150);
  }
  if (failure !== undefined) {
    await server.stop("SIGKILL", 1_000).catch(() => undefined);
    const tail = server.logTail(40);
    const message = `pgstack canary on 127.0.0.1:${port} ${failure}; last lines of ${logFile}:\n${tail}`;
    if (saysAddressInUse(tail)) throw new PortInUseError(message);
    throw new Error(message);
  }
  return {
    port,
    url,
    logFile,
    process: server,
    async stop() {
      await server.stop("SIGTERM", 30_000);
    },
  };
}
