/**
 * `pgstack canary`: the synthetic canary as a long-running process (until SIGTERM or SIGINT), or one round with
 * `--once` for a person or a deploy check. Connection URLs come from the environment only, never from arguments
 * (a process list shows arguments); every line printed has the password masked.
 */
import { Canary, type RoundResult } from "../canary";
import {
  canarySettingsProblems,
  canaryVectorScenarios,
  defaultCanarySettings,
  directUrlEnv,
  parseListenAddress,
  pooledUrlEnv,
  type CanarySettings,
} from "../configs/canary";
import { parseDuration } from "../configs/units";
import { maskUrl } from "../postdeploy/smoke-pg";
import { parseArgs } from "./args";
import { UsageError, UserFacingError } from "./errors";
import type { Command } from "./main";

const usage = [
  "usage: pgstack canary [--listen 127.0.0.1:9188] [--interval 10s] [--connect-interval 1s]",
  "                      [--connect-timeout 10s] [--query-timeout 10s] [--table pgstack_canary]",
  "                      [--dimensions 768] [--max-rows 1000] [--ef-search 40] [--once [--json]]",
  "",
  "environment:",
  `  ${pooledUrlEnv}   postgresql:// URL through PgBouncer as the application's user (required)`,
  `  ${directUrlEnv}   postgresql:// URL of PostgreSQL itself: also probe its logins (optional)`,
  "",
  "Serves /metrics (pgstack_canary_*) until SIGTERM/SIGINT. --once runs one connection probe per target and one",
  "round of the scenarios (search, hybrid, insert), prints them and exits 1 if anything failed.",
].join("\n");

function durationFlag(flags: Record<string, string | true>, name: string, fallback: number): number {
  const value = flags[name];
  if (typeof value !== "string") return fallback;
  const parsed = parseDuration(value);
  if (!parsed.ok) throw new UsageError(`--${name} "${value}" ${parsed.error}`);
  return parsed.value;
}

function integerFlag(flags: Record<string, string | true>, name: string, fallback: number): number {
  const value = flags[name];
  if (typeof value !== "string") return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} "${value}" is not a whole number`);
  return Number(value);
}

export function canarySettingsFromArgs(args: string[]): { settings: CanarySettings; once: boolean; json: boolean } {
  const { positionals, flags } = parseArgs(args, {
    values: ["listen", "interval", "connect-interval", "connect-timeout", "query-timeout", "table", "dimensions", "max-rows", "ef-search"],
    booleans: ["once", "json"],
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const d = defaultCanarySettings;
  let listen = d.listen;
  if (typeof flags.listen === "string") {
    const parsed = parseListenAddress(flags.listen);
    if (parsed === null) throw new UsageError(`--listen "${flags.listen}" is not host:port; write e.g. 127.0.0.1:9188 or 0.0.0.0:9188`);
    listen = parsed;
  }
  const settings: CanarySettings = {
    ...d,
    listen,
    intervalMs: durationFlag(flags, "interval", d.intervalMs),
    connectIntervalMs: durationFlag(flags, "connect-interval", d.connectIntervalMs),
    connectTimeoutMs: durationFlag(flags, "connect-timeout", d.connectTimeoutMs),
    queryTimeoutMs: durationFlag(flags, "query-timeout", d.queryTimeoutMs),
    table: typeof flags.table === "string" ? flags.table : d.table,
    dimensions: integerFlag(flags, "dimensions", d.dimensions),
    maxRows: integerFlag(flags, "max-rows", d.maxRows),
    efSearch: integerFlag(flags, "ef-search", d.efSearch),
  };
  const problems = canarySettingsProblems(settings);
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  if (flags.json && !flags.once) throw new UsageError("--json goes with --once (the long-running canary reports on /metrics)");
  return { settings, once: flags.once === true, json: flags.json === true };
}

function urlFromEnv(name: string, required: boolean): string | undefined {
  const value = process.env[name];
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

function roundTable(probes: Readonly<Record<string, string | null>>, round: RoundResult): string {
  const rows: [string, string][] = Object.entries(probes).map(([target, error]) => [`connect ${target}`, error === null ? "ok" : `FAILED: ${error}`]);
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
  summary: "run the synthetic canary: vector search, hybrid and insert through PgBouncer, latency and connection failures on /metrics",
  usage,
  async run(args) {
    const { settings, once, json } = canarySettingsFromArgs(args);
    const pooledUrl = urlFromEnv(pooledUrlEnv, true)!;
    const directUrl = urlFromEnv(directUrlEnv, false);
    const log = (line: string): void => {
      process.stderr.write(`${new Date().toISOString()} pgstack canary: ${line}\n`);
    };
    const canary = new Canary({ settings, pooledUrl, directUrl, log: once ? undefined : log });

    if (once) {
      const probes: Record<string, string | null> = { pgbouncer: await canary.probe("pgbouncer") };
      if (directUrl !== undefined) probes.postgres = await canary.probe("postgres");
      const round = await canary.runRound();
      const failed = Object.values(probes).some((e) => e !== null) || canaryVectorScenarios.some((s) => !round.scenarios[s].ok);
      if (json) console.log(JSON.stringify({ ok: !failed, connections: probes, round }, null, 2));
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
