/**
 * A Docker engine to build and run the images: the one already answering on its socket, or dockerd started here
 * (installed first from Debian's docker.io when missing). Talks to the engine's HTTP API over the Unix socket with
 * node:http; the docker CLI is needed only to build (image-build.ts).
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import type { Readable } from "node:stream";
import type { Progress } from "../../configs/progress";
import { delay, runCommand, spawnServer, type ServerProcess } from "../runtime/processes";

/** Where dockerd listens by default, and where the docker CLI looks. */
export const defaultDockerSocket = "/var/run/docker.sock";

export interface DockerResponse {
  readonly status: number;
  readonly body: Buffer;
}

export interface DockerRequestOptions {
  /** Defaults to defaultDockerSocket. */
  readonly socketPath?: string;
  /** Sent as the request body: a string, bytes, or a stream (a tar archive for an import). Defaults to none. */
  readonly body?: string | Buffer | Readable;
  readonly headers?: Readonly<Record<string, string>>;
  /** Defaults to 10 s; an import or a pull streams for longer and passes its own. */
  readonly timeoutMs?: number;
}

/**
 * One request to the engine's API, the whole response body collected. Rejects only when the socket cannot be reached
 * or the time runs out; an HTTP error status is the caller's to read.
 */
export function dockerRequest(method: string, apiPath: string, opts: DockerRequestOptions = {}): Promise<DockerResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { socketPath: opts.socketPath ?? defaultDockerSocket, method, path: apiPath, headers: { ...opts.headers }, timeout: opts.timeoutMs ?? 10_000 },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
        response.on("error", reject);
      },
    );
    request.on("timeout", () => request.destroy(new Error(`the Docker engine did not answer ${method} ${apiPath} within ${opts.timeoutMs ?? 10_000} ms`)));
    request.on("error", reject);
    const body = opts.body;
    if (body === undefined) request.end();
    else if (typeof body === "string" || Buffer.isBuffer(body)) request.end(body);
    else {
      body.on("error", (error) => request.destroy(error));
      body.pipe(request);
    }
  });
}

/** Whether an engine answers `GET /_ping` with OK on the socket. */
export async function dockerAnswers(socketPath = defaultDockerSocket): Promise<boolean> {
  try {
    const response = await dockerRequest("GET", "/_ping", { socketPath, timeoutMs: 2_000 });
    return response.status === 200 && response.body.toString("utf8").trim() === "OK";
  } catch {
    return false;
  }
}

export interface DockerEngine {
  readonly socketPath: string;
  /** True when this process started dockerd; only then does stop() do anything. */
  readonly startedHere: boolean;
  /** dockerd's log, when started here. */
  readonly logFile?: string;
  /** Stops the dockerd this process started and waits until it exited; an engine found running is left alone. */
  stop(): Promise<void>;
}

export interface EnsureDockerEngineOptions {
  /** Defaults to defaultDockerSocket. Another path starts dockerd with `--host unix://<path>`. */
  readonly socketPath?: string;
  /**
   * What runs dockerd: the program and its leading arguments. Defaults to ["dockerd"]. A second daemon beside the
   * host's belongs in namespaces of its own (["unshare", "--net", "--mount", "--propagation", "private", "dockerd"]):
   * dockerd --bridge=none deletes the host's docker0, and its storage driver mounts under its data root.
   */
  readonly dockerdCommand?: readonly string[];
  /** More dockerd arguments (a private --data-root, --exec-root, --pidfile for a second daemon). Defaults to none. */
  readonly dockerdArgs?: readonly string[];
  /** Where dockerd's output goes. Defaults to .cache/dockerd.log in the project. */
  readonly logFile?: string;
}

/** dockerd creates its bridge, containerd and the socket first; 60 s is ample on a slow host. */
const DOCKERD_READY_MS = 60_000;
/** dockerd stops its containers (10 s each by default) before it exits. */
const DOCKERD_STOP_MS = 60_000;

/**
 * The engine answering on the socket, or one started here: dockerd detached in its own process group, its output in
 * a log file. Installing and starting need root; without it the error says so.
 */
export async function ensureDockerEngine(progress: Progress, opts: EnsureDockerEngineOptions = {}): Promise<DockerEngine> {
  const socketPath = opts.socketPath ?? defaultDockerSocket;
  if (await dockerAnswers(socketPath)) return { socketPath, startedHere: false, stop: async () => undefined };
  if (process.getuid?.() !== 0) {
    throw new Error(`no Docker engine answers on ${socketPath}, and starting dockerd needs root; start Docker (systemctl start docker) or run as root`);
  }
  await ensureDockerd(progress);
  // Installing docker.io may have started the daemon through its init script.
  if (await dockerAnswers(socketPath)) return { socketPath, startedHere: false, stop: async () => undefined };

  const logFile = opts.logFile ?? path.resolve(__dirname, "..", "..", ".cache", "dockerd.log");
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const [program, ...leading] = opts.dockerdCommand ?? ["dockerd"];
  const args = [...leading, ...(socketPath === defaultDockerSocket ? [] : [`--host=unix://${socketPath}`]), ...(opts.dockerdArgs ?? [])];
  progress.step(`starting ${[program, ...args].join(" ")} (log: ${logFile})`);
  const server = await spawnServer(program, args, { name: "dockerd", logFile, env: withSbin(process.env) });
  const deadline = Date.now() + DOCKERD_READY_MS;
  while (!(await dockerAnswers(socketPath))) {
    const exit = server.exitStatus();
    const failure = exit !== undefined ? `exited (${exit.code ?? exit.signal}) before it answered` : Date.now() > deadline ? `did not answer on ${socketPath} within ${DOCKERD_READY_MS / 1000} s` : undefined;
    if (failure !== undefined) {
      await server.stop("SIGKILL", 1_000).catch(() => undefined);
      throw new Error(`dockerd ${failure}; last lines of ${logFile}:\n${server.logTail(30)}`);
    }
    await delay(200);
  }
  return { socketPath, startedHere: true, logFile, stop: () => stopDockerd(server) };
}

/** SIGTERM, as systemd stops it: dockerd stops its containers and containerd, then exits. */
async function stopDockerd(server: ServerProcess): Promise<void> {
  if (server.exitStatus() !== undefined) return;
  await server.stop("SIGTERM", DOCKERD_STOP_MS);
}

async function ensureDockerd(progress: Progress): Promise<void> {
  const env = withSbin(process.env);
  if ((await runCommand("sh", ["-c", "command -v dockerd"], { env })).code === 0) return;
  progress.step("installing Debian's docker.io with apt-get (dockerd is missing; needed once)");
  const aptEnv = { ...env, DEBIAN_FRONTEND: "noninteractive" };
  // A fresh machine has no package lists yet, so update first.
  for (const args of [["update"], ["install", "-y", "docker.io"]]) {
    const result = await runCommand("apt-get", args, { env: aptEnv, timeoutMs: 15 * 60_000 });
    if (result.code !== 0) {
      throw new Error(`apt-get ${args.join(" ")} failed (exit ${result.code}) while installing docker.io:\n${result.stderr.trim()}`);
    }
  }
}

export function withSbin(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, PATH: `${env.PATH ?? "/usr/bin:/bin"}:/usr/sbin:/sbin` };
}
