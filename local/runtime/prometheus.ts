import { getRuntime } from "./getRuntime";
import { startHttpServer, type HttpServer } from "./httpServer";
import type { ExecResult } from "./processes";
import { httpGet } from "./readiness";
import type { Runtime } from "./runtime";

export interface PrometheusOptions {
  readonly runtime: Runtime;
  /** prometheus.yml as rendered. Relative `rule_files` entries resolve next to it, where `ruleFiles` are written. */
  readonly configYaml: string;
  /** Rule files by relative name ("alerts.yml", "rules/pgvector.yml"), written next to the config. Defaults to none. */
  readonly ruleFiles?: Readonly<Record<string, string>>;
  /** Defaults to a free port. */
  readonly port?: number;
  /** More flags, passed through. Defaults to none. */
  readonly args?: readonly string[];
}

export interface PrometheusServer extends HttpServer {
  /** Re-reads the config and rule files (POST /-/reload, enabled by --web.enable-lifecycle). */
  reload(): Promise<void>;
}

/** Prometheus with its config, rules and TSDB in a scratch directory; ready once /-/ready answers 200. */
export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusServer> {
  const scratch = opts.runtime.scratchDir("prometheus");
  const configFile = scratch.writeFile("prometheus.yml", opts.configYaml);
  for (const [name, text] of Object.entries(opts.ruleFiles ?? {})) scratch.writeFile(name, text);
  const server = await startHttpServer({
    runtime: opts.runtime,
    program: "prometheus",
    scratch,
    port: opts.port,
    args: (port) => [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${scratch.pathOf("data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--web.enable-lifecycle",
      ...(opts.args ?? []),
    ],
    readyPath: "/-/ready",
  });
  return {
    ...server,
    async reload() {
      const response = await httpGet(`${server.url}/-/reload`, 30_000, "POST");
      if (response.status !== 200) throw new Error(`Prometheus reload failed (HTTP ${response.status}): ${response.body.trim()}`);
    },
  };
}

/**
 * Runs promtool to completion with `files` written into a fresh scratch directory that is also its working
 * directory, so `args` name them by their relative names: promtool(["check", "rules", "alerts.yml"], {…}).
 * The result carries promtool's exit code; a failing check is a result, not an exception.
 */
export async function promtool(
  args: readonly string[],
  files: Readonly<Record<string, string>>,
  runtime?: Runtime,
): Promise<ExecResult> {
  const rt = runtime ?? (await getRuntime());
  const scratch = rt.scratchDir("promtool");
  try {
    for (const [name, text] of Object.entries(files)) scratch.writeFile(name, text);
    return await rt.exec("promtool", args, { cwd: scratch.path, timeoutMs: 120_000 });
  } finally {
    scratch.remove();
  }
}
