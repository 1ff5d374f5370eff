import * as fs from "node:fs";
import * as path from "node:path";
import type { ProgramName, VersionedThing } from "./programs";
import { runCommand, spawnServer, type ExecResult, type ServerProcess } from "./processes";
import { trackServer, untrackServer } from "./registry";
import { createScratchDir, type ScratchDir } from "./scratch";

/** Who a program runs as. PostgreSQL and PgBouncer refuse root, so servers default to postgres. */
export type RuntimeUser = "postgres" | "root";

export interface ExecOptions {
  /** Defaults to "postgres". */
  readonly user?: RuntimeUser;
  /** Defaults to 10 minutes. */
  readonly timeoutMs?: number;
  /** Added to a clean environment (PATH, HOME, LANG); the host's environment is not passed on. */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory as the program sees it (ScratchDir.path). Defaults to "/" for chroot. */
  readonly cwd?: string;
  /** Fed to standard input. Defaults to none. */
  readonly input?: string;
}

export interface SpawnOptions {
  /** Defaults to "postgres". */
  readonly user?: RuntimeUser;
  /** HOST path of the file that receives stdout and stderr (ScratchDir.hostPathOf("x.log")). */
  readonly logFile: string;
  /** Added to a clean environment (PATH, HOME, LANG). */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory as the program sees it. */
  readonly cwd?: string;
  /** Signal `stop()` sends first. Defaults to SIGTERM. */
  readonly stopSignal?: NodeJS.Signals;
  /** Name in error messages and the registry. Defaults to the program name. */
  readonly name?: string;
}

/** Where the real programs come from and how to run them. Get one with `getRuntime()`. */
export interface Runtime {
  /** "native": programs installed on this host; "chroot": the Debian 13 rootfs. */
  readonly kind: "native" | "chroot";
  /** "/" for native, the rootfs directory for chroot. */
  readonly rootDir: string;
  /** Versions found, e.g. { postgres: "17.12", pgvector: "0.8.0", pgbouncer: "1.24.1", … }. */
  readonly versions: Readonly<Record<VersionedThing, string>>;
  /** One line on why this kind was chosen. */
  readonly reason: string;
  /** uid/gid of the postgres user as the programs see it (the rootfs's /etc/passwd for chroot). */
  readonly postgresUser: { readonly uid: number; readonly gid: number; readonly home: string };
  /** Path of a program as the runtime sees it (inside the rootfs for chroot). */
  programPath(name: ProgramName): string;
  /** Host path of a path as the runtime sees it. */
  hostPath(runtimePath: string): string;
  /** A fresh directory visible to the programs, removed by stopAll(). */
  scratchDir(label: string): ScratchDir;
  /** Runs a program to completion. */
  exec(program: ProgramName, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a server in its own process group, registered for stopAll(). */
  spawn(program: ProgramName, args: readonly string[], opts: SpawnOptions): Promise<ServerProcess>;
}

export interface RuntimeDescription {
  readonly kind: Runtime["kind"];
  readonly rootDir: string;
  readonly reason: string;
  readonly versions: Readonly<Record<VersionedThing, string>>;
  /** Program paths as the runtime sees them. */
  readonly paths: Readonly<Record<ProgramName, string>>;
  readonly postgresUser: Runtime["postgresUser"];
}

const CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function createRuntime(description: RuntimeDescription): Runtime {
  const { kind, rootDir, postgresUser } = description;
  const chroot = kind === "chroot" ? hostProgram("chroot") : "";

  /** Command line and identity for running `program` as `user`. */
  function launch(program: ProgramName, args: readonly string[], user: RuntimeUser, cwd: string | undefined) {
    const programPath = description.paths[program];
    const env: NodeJS.ProcessEnv = {
      PATH: kind === "chroot" ? CHROOT_PATH : `${process.env.PATH ?? "/usr/bin:/bin"}:/usr/sbin:/sbin`,
      HOME: user === "postgres" ? postgresUser.home : "/root",
      LANG: "C.UTF-8",
    };
    if (kind === "chroot") {
      // Numeric ids: a name would be looked up in the HOST's passwd, where postgres may have another uid.
      const identity = user === "postgres" ? [`--userspec=${postgresUser.uid}:${postgresUser.gid}`, `--groups=${postgresUser.gid}`] : [];
      // chroot always starts in "/"; env --chdir moves to the wanted directory and execs, keeping the pid.
      const chdir = cwd === undefined ? [] : ["/usr/bin/env", `--chdir=${cwd}`];
      return { command: chroot, args: [...identity, rootDir, ...chdir, programPath, ...args], env, ids: {}, cwd: undefined };
    }
    const switchUser = user === "postgres" && process.getuid?.() !== postgresUser.uid;
    if (switchUser && process.getuid?.() !== 0) {
      throw new Error(`running ${program} as the postgres user needs root (or running as postgres itself)`);
    }
    const ids = switchUser ? { uid: postgresUser.uid, gid: postgresUser.gid } : {};
    return { command: programPath, args: [...args], env, ids, cwd };
  }

  return {
    kind,
    rootDir,
    versions: description.versions,
    reason: description.reason,
    postgresUser,
    programPath: (name) => description.paths[name],
    hostPath: (runtimePath) => (kind === "chroot" ? path.join(rootDir, runtimePath) : runtimePath),
    scratchDir: (label) => createScratchDir(rootDir, label, postgresUser),
    async exec(program, args, opts = {}) {
      const run = launch(program, args, opts.user ?? "postgres", opts.cwd);
      return runCommand(run.command, run.args, {
        env: { ...run.env, ...opts.env },
        cwd: run.cwd,
        ...run.ids,
        input: opts.input,
        timeoutMs: opts.timeoutMs,
      });
    },
    async spawn(program, args, opts) {
      const run = launch(program, args, opts.user ?? "postgres", opts.cwd);
      const server = await spawnServer(run.command, run.args, {
        name: opts.name ?? program,
        logFile: opts.logFile,
        env: { ...run.env, ...opts.env },
        cwd: run.cwd,
        ...run.ids,
        stopSignal: opts.stopSignal,
        onGone: untrackServer,
      });
      trackServer(server);
      return server;
    },
  };
}

/** Absolute path of a host tool, so that a clean child environment cannot change which one runs. */
export function hostProgram(name: string): string {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const dir of dirs.filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} is not installed on this host (needed to run the Debian 13 rootfs)`);
}
