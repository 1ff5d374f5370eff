import * as http from "node:http";
import { PortInUseError, saysAddressInUse } from "./ports";
import { delay, type ServerProcess } from "./processes";
import type { Runtime } from "./runtime";
import type { ProgramName } from "./programs";

export interface ReadinessCheck {
  readonly runtime: Runtime;
  readonly program: ProgramName;
  readonly server: ServerProcess;
  readonly port: number;
  /** Resolves true once the server does its job. */
  readonly probe: () => Promise<boolean>;
  readonly timeoutMs: number;
}

/**
 * Polls `probe` until it succeeds. Fails fast when the server exits, and on any failure stops the server
 * and throws an error naming the program, its version, the port and the tail of its log. A server that
 * exited because its port was taken meanwhile throws PortInUseError, so the caller can retry elsewhere.
 */
export async function waitUntilReady(check: ReadinessCheck): Promise<void> {
  const { runtime, program, server, port } = check;
  const deadline = Date.now() + check.timeoutMs;
  let failure: string | undefined;
  while (failure === undefined) {
    const exit = server.exitStatus();
    if (exit !== undefined) {
      failure = `exited (${exit.code !== null ? `code ${exit.code}` : exit.signal}) before it was ready`;
      break;
    }
    if (await check.probe().catch(() => false)) return;
    if (Date.now() > deadline) failure = `was not ready after ${Math.round(check.timeoutMs / 1000)} s`;
    else await delay(150);
  }
  await server.stop("SIGKILL", 1000).catch(() => undefined);
  const tail = server.logTail(40);
  const message =
    `${program} ${runtime.versions[program]} (${runtime.kind} runtime) on 127.0.0.1:${port} ${failure}; ` +
    `last lines of ${server.logFile}:\n${tail}`;
  if (saysAddressInUse(tail)) throw new PortInUseError(message);
  throw new Error(message);
}

/** Whether GET url answers 200. */
export function httpOk(url: string, timeoutMs = 2000): Promise<boolean> {
  return httpGet(url, timeoutMs).then(
    (response) => response.status === 200,
    () => false,
  );
}

export interface HttpResponse {
  readonly status: number;
  readonly body: string;
}

/** A plain HTTP request to a loopback server (no proxies, no keep-alive). */
export function httpGet(url: string, timeoutMs = 5000, method = "GET"): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, agent: false, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      response.on("error", reject);
    });
    request.on("timeout", () => request.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
    request.on("error", reject);
    request.end();
  });
}
