import type { Launch } from "../../configs/launches";
import { startHttpServer, type HttpServer } from "./httpServer";
import type { ScratchDir } from "./scratch";
import type { Runtime } from "./runtime";

export interface LaunchOptions {
  readonly runtime: Runtime;
  /** A rendered launch (configs/launches.ts): program, every argument (its listen address included), environment. */
  readonly launch: Launch;
  /** Where its log file goes. */
  readonly scratch: ScratchDir;
  /** The launch's `secretEnv` filled in, variable → value (passwords, URLs that carry one). Defaults to none. */
  readonly secretEnv?: Readonly<Record<string, string>>;
  /** Path that answers 200 once it is ready. Defaults to /metrics (Prometheus: /-/ready). */
  readonly readyPath?: string;
  /** Defaults to 30 s. */
  readonly startTimeoutMs?: number;
}

/**
 * A rendered launch as a rig server (httpServer.ts), the one way the rig starts postgres_exporter,
 * pgbouncer_exporter, node_exporter, mtail and Prometheus: program, arguments and environment exactly as rendered,
 * the secrets in the environment only, on the launch's port. The rig adds only what makes it one of its servers: a
 * clean base environment (PATH, HOME, LANG), the postgres user, the chroot, a log file in `scratch`, and the
 * readiness probe. A port another process took first is a PortInUseError, for the caller to render again.
 */
export async function startLaunch(opts: LaunchOptions): Promise<HttpServer> {
  const { launch } = opts;
  const secretEnv = opts.secretEnv ?? {};
  if (launch.program === "pgstack") throw new Error("`pgstack canary` runs on this host, not in the rig: local/canary-process.ts starts it");
  const missing = Object.keys(launch.secretEnv).filter((variable) => secretEnv[variable] === undefined);
  if (missing.length > 0) throw new Error(`${launch.program}'s launch needs ${missing.join(", ")} filled in`);
  // A secret on the command line is readable by every user of this host (ps, /proc/<pid>/cmdline).
  const inArgv = Object.entries(secretEnv).filter(([, value]) => value !== "" && launch.args.some((arg) => arg.includes(value)));
  if (inArgv.length > 0) {
    throw new Error(`${launch.program}'s arguments hold the value of ${inArgv.map(([variable]) => variable).join(", ")}; a secret goes in the environment only`);
  }
  return startHttpServer({
    runtime: opts.runtime,
    program: launch.program,
    scratch: opts.scratch,
    port: launch.port,
    args: () => launch.args,
    env: { ...launch.env, ...secretEnv },
    readyPath: opts.readyPath ?? "/metrics",
    startTimeoutMs: opts.startTimeoutMs,
  });
}
