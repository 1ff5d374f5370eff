/**
 * `pgstack canary`: the synthetic canary as a long-running process (until SIGTERM or SIGINT), or one round with
 * `--once` for a person or a deploy check. Connection URLs come from the environment only, never from arguments
 * (a process list shows arguments); every line printed has the password masked.
 */
import { Canary, describeReading, type ProbeResult, type RoundResult } from "../canary";
import {
  canarySettingsProblems,
  canaryVectorScenarios,
  defaultCanarySettings,
  directUrlEnv,
  parseListenAddress,
  pooledUrlEnv,
  type CanarySettings,
} from "../configs/canary";
import { maskUrl } from "../configs/secrets";
import { parseDuration } from "../configs/units";
import { chosenFormat, commandHelp, formatOptions, noPositionals, parseOptions } from "./args";
import type { Command } from "./command";
import { UsageError, UserFacingError } from "./errors";
import { secretFromEnv } from "./secret-env";

/** A default duration as a person writes it: 10000 → "10s", 500 → "500ms". */
function shownDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

const d = defaultCanarySettings;
const options = {
  listen: { type: "string", value: "HOST:PORT", default: `${d.listen.host}:${d.listen.port}`, help: "where /metrics is served" },
  interval: { type: "string", value: "DURATION", default: shownDuration(d.intervalMs), help: "time between rounds of the scenarios" },
  "connect-interval": { type: "string", value: "DURATION", default: shownDuration(d.connectIntervalMs), help: "time between connection probes of each target" },
  "connect-timeout": { type: "string", value: "DURATION", default: shownDuration(d.connectTimeoutMs), help: "a connection probe slower than this counts as a failure" },
  "query-timeout": { type: "string", value: "DURATION", default: shownDuration(d.queryTimeoutMs), help: "a scenario slower than this is given up and counted as a timeout" },
  table: { type: "string", value: "NAME", default: d.table, help: "the canary's own table, created when missing (it holds canary rows only)" },
  dimensions: { type: "string", value: "N", default: String(d.dimensions), help: "dimensions of the canary's vectors" },
  "max-rows": { type: "string", value: "N", default: String(d.maxRows), help: "rows the table is filled to at start and trimmed back to after each round" },
  "ef-search": { type: "string", value: "N", default: String(d.efSearch), help: "hnsw.ef_search of the search and hybrid scenarios" },
  once: { type: "boolean", help: "one connection probe per target and one round of the scenarios, printed; exit 1 if\nanything failed" },
  ...formatOptions(["text", "json"], "--once: text for people, json for a deploy check"),
} as const;

const help = commandHelp({
  usage: ["pgstack canary [options]", "pgstack canary --once [--format text|json] [options]"],
  description: [
    "The synthetic canary: vector search, hybrid search and insert through PgBouncer, plus connection probes, with",
    "latency and failures as Prometheus metrics (pgstack_canary_*) on /metrics until SIGTERM or SIGINT. Each probe",
    "also reads the TLS certificate the target presents and exports its expiry, verified against the URL's",
    "sslrootcert and host or not. Connection URLs come from the environment only (a process list shows arguments);",
    "their sslmode and sslrootcert apply (e.g. ?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt); passwords",
    "are never printed.",
  ],
  sections: [
    { title: "options", options },
    {
      title: "environment",
      lines: [
        `${pooledUrlEnv}   postgresql:// URL through PgBouncer as the application's user (required)`,
        `${directUrlEnv}   postgresql:// URL of PostgreSQL itself: also probe its logins (optional)`,
        `<NAME>_FILE          instead of either: a file holding it (how the Docker target passes them)`,
      ],
    },
    { title: "exit status", lines: ["0 stopped by a signal, or --once all ok; 1 --once with a failure, or the canary could not start; 2 usage error"] },
  ],
});

function durationFlag(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = parseDuration(value);
  if (!parsed.ok) throw new UsageError(`--${name} "${value}" ${parsed.error}`);
  return parsed.value;
}

function integerFlag(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} "${value}" is not a whole number`);
  return Number(value);
}

export function canarySettingsFromArgs(args: string[]): { settings: CanarySettings; once: boolean; json: boolean } {
  const { positionals, values: flags } = parseOptions(args, options);
  noPositionals(positionals);
  const json = chosenFormat(flags, ["text", "json"] as const) === "json";
  let listen = d.listen;
  if (flags.listen !== undefined) {
    const parsed = parseListenAddress(flags.listen);
    if (parsed === null) throw new UsageError(`--listen "${flags.listen}" is not host:port; write e.g. 127.0.0.1:9188 or 0.0.0.0:9188`);
    listen = parsed;
  }
  const settings: CanarySettings = {
    ...d,
    listen,
    intervalMs: durationFlag(flags.interval, "interval", d.intervalMs),
    connectIntervalMs: durationFlag(flags["connect-interval"], "connect-interval", d.connectIntervalMs),
    connectTimeoutMs: durationFlag(flags["connect-timeout"], "connect-timeout", d.connectTimeoutMs),
    queryTimeoutMs: durationFlag(flags["query-timeout"], "query-timeout", d.queryTimeoutMs),
    table: flags.table ?? d.table,
    dimensions: integerFlag(flags.dimensions, "dimensions", d.dimensions),
    maxRows: integerFlag(flags["max-rows"], "max-rows", d.maxRows),
    efSearch: integerFlag(flags["ef-search"], "ef-search", d.efSearch),
  };
  const problems = canarySettingsProblems(settings);
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  const asked = flags.json ? "--json" : `--format ${flags.format}`;
  if (json && !flags.once) throw new UsageError(`${asked} goes with --once (the long-running canary reports on /metrics)`);
  return { settings, once: flags.once === true, json };
}

function urlFromEnv(name: string, required: boolean): string | undefined {
  // Or from the file ${name}_FILE names, as the container targets pass it.
  const value = secretFromEnv(name);
  if (value === undefined || value === "") {
    if (required) throw new UserFacingError(`${name} is not set; set it to the postgresql:// URL of PgBouncer with the application's user and password`);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UserFacingError(`${name} is not a URL (${maskUrl(value)}); write postgresql://user:password@host:6432/database`);
  }
  if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
    throw new UserFacingError(`${name} must be a postgresql:// URL, not ${url.protocol}//…`);
  }
  return value;
}

/** A probe failed: no login, or a certificate that could not be read or would be refused by a verifying client. */
function probeFailed(probe: ProbeResult): boolean {
  return probe.connection !== null || !probe.certificate.ok || !probe.certificate.certificate.verified;
}

function roundTable(probes: Readonly<Record<string, ProbeResult>>, round: RoundResult): string {
  const rows: [string, string][] = Object.entries(probes).flatMap(([target, probe]): [string, string][] => [
    [`connect ${target}`, probe.connection === null ? "ok" : `FAILED: ${probe.connection}`],
    [`certificate ${target}`, `${probe.certificate.ok && probe.certificate.certificate.verified ? "" : "FAILED: "}${describeReading(probe.certificate)}`],
  ]);
  if (round.connectionError !== null) rows.push(["round", `FAILED: ${round.connectionError}`]);
  for (const scenario of canaryVectorScenarios) {
    const o = round.scenarios[scenario];
    rows.push([
      scenario,
      o.ok ? `${(o.seconds * 1000).toFixed(1)} ms` : `FAILED (${o.reason}${o.seconds !== null ? ` after ${(o.seconds * 1000).toFixed(0)} ms` : ""}): ${o.error}`,
    ]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join("\n");
}

export const canaryCommand: Command = {
  help,
  async run(args) {
    const { settings, once, json } = canarySettingsFromArgs(args);
    const pooledUrl = urlFromEnv(pooledUrlEnv, true)!;
    const directUrl = urlFromEnv(directUrlEnv, false);
    const log = (line: string): void => {
      process.stderr.write(`${new Date().toISOString()} pgstack canary: ${line}\n`);
    };
    const canary = new Canary({ settings, pooledUrl, directUrl, log: once ? undefined : log });

    if (once) {
      const probes: Record<string, ProbeResult> = { pgbouncer: await canary.probe("pgbouncer") };
      if (directUrl !== undefined) probes.postgres = await canary.probe("postgres");
      const round = await canary.runRound();
      const failed = Object.values(probes).some(probeFailed) || canaryVectorScenarios.some((s) => !round.scenarios[s].ok);
      const each = <T>(pick: (p: ProbeResult) => T): Record<string, T> => Object.fromEntries(Object.entries(probes).map(([t, p]) => [t, pick(p)]));
      // `connections` keeps its shape (target → error or null); certificates are beside it, dates in ISO 8601.
      if (json) console.log(JSON.stringify({ ok: !failed, connections: each((p) => p.connection), certificates: each((p) => p.certificate), round }, null, 2));
      else console.log(`pgstack canary, one round on ${settings.table} via ${maskUrl(pooledUrl)}:\n${roundTable(probes, round)}`);
      return failed ? 1 : 0;
    }

    try {
      await canary.start();
    } catch (error) {
      throw new UserFacingError(`cannot serve metrics on ${settings.listen.host}:${settings.listen.port}: ${(error as Error).message}`);
    }
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGTERM", () => resolve("SIGTERM"));
      process.once("SIGINT", () => resolve("SIGINT"));
    });
    log(`${signal}: stopping`);
    await canary.stop();
    return 0;
  },
};
