import { onFreePort } from "./ports";
import type { ServerProcess } from "./processes";
import { httpOk, waitUntilReady } from "./readiness";
import type { Runtime } from "./runtime";
import type { ProgramName } from "./programs";
import type { ScratchDir } from "./scratch";

/** An exporter or Prometheus: an HTTP server on a loopback port. */
export interface HttpServer {
  readonly port: number;
  /** Base URL, e.g. http://127.0.0.1:9187 */
  readonly url: string;
  /** Host path of the log. */
  readonly logFile: string;
  readonly scratch: ScratchDir;
  readonly process: ServerProcess;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export interface HttpServerLaunch {
  readonly runtime: Runtime;
  readonly program: ProgramName;
  readonly scratch: ScratchDir;
  readonly port?: number;
  /** Arguments for a given port; the listen address is always 127.0.0.1. */
  readonly args: (port: number) => readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Path that answers 200 once the server is ready: /metrics for exporters, /-/ready for Prometheus. */
  readonly readyPath: string;
  readonly startTimeoutMs?: number;
}

export function startHttpServer(launch: HttpServerLaunch): Promise<HttpServer> {
  const { runtime, program, scratch } = launch;
  const logFile = scratch.hostPathOf(`${program}.log`);
  return onFreePort(launch.port, async (port) => {
    const url = `http://127.0.0.1:${port}`;
    const server = await runtime.spawn(program, launch.args(port), { logFile, env: launch.env, name: program });
    await waitUntilReady({
      runtime,
      program,
      server,
      port,
      timeoutMs: launch.startTimeoutMs ?? 30_000,
      probe: () => httpOk(`${url}${launch.readyPath}`),
    });
    return {
      port,
      url,
      logFile,
      scratch,
      process: server,
      async stop() {
        await server.stop("SIGTERM", 10_000);
      },
    };
  });
}
