/**
 * PostgreSQL 17 runs with the rendered postgresql.conf and pg_hba.conf, and every rendered setting reads back from
 * pg_settings with the intended value (units normalized), with nothing in pg_file_settings left unapplied or in
 * error. The running node is a 4Gi one, sized by the same code path as staging and prod; the staging (32Gi) and
 * prod (64Gi) renderings are then read back with `postgres -C` on the stopped cluster, which parses and checks
 * the whole file without allocating their shared memory.
 */
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderPgHba } from "../../configs/pg-hba";
import { postgresqlSettings, renderPostgresqlConf, type PostgresSetting } from "../../configs/postgresql";
import type { StackSpec } from "../../configs/stack-spec";
import { getRuntime, startPostgres, stopAll, type PostgresServer, type Runtime } from "../../local/runtime";
import { specFor } from "../unit/spec-fixture";

/** Set by the rig on the command line (test isolation); the file's values for these are overridden by design. */
/** What the rig sets with -c for a conf not rendered for a placement: where it listens, and its own certificate. */
const rigOwned = new Set(["port", "listen_addresses", "unix_socket_directories", "ssl_cert_file", "ssl_key_file"]);

const perfSpec = specFor(
  {
    target: "local",
    node: { memory: "4Gi", cpus: 2 },
    postgres: { settings: { default_statistics_target: "200", "hnsw.ef_search": "100", work_mem: "48MB" } },
  },
  "perf",
);
const stagingSpec = specFor({ node: { memory: "32Gi", cpus: 8 } }, "staging");
const prodSpec = specFor({ node: { memory: "64Gi", cpus: 16, storage: "nvme" } }, "prod");

interface PgSetting {
  readonly setting: string;
  readonly unit: string | null;
  readonly vartype: string;
  readonly source: string;
}

const memoryUnits: Readonly<Record<string, number>> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
const timeUnits: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** A value with an optional unit ("8GB", "5min", "0") in the base of pg_settings' unit ("8kB", "ms", …). */
function inUnit(value: string, unit: string): number {
  const [, number, suffix] = /^(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(value.trim()) ?? [];
  if (number === undefined) throw new Error(`"${value}" is not a number with a unit`);
  const unitMatch = /^(\d*)([A-Za-z]+)$/.exec(unit);
  if (!unitMatch) throw new Error(`unknown pg_settings unit "${unit}"`);
  const unitScale = Number(unitMatch[1] || "1");
  const table = unitMatch[2] in memoryUnits ? memoryUnits : timeUnits;
  const base = table[unitMatch[2]] * unitScale;
  const scale = suffix === "" ? base : table[suffix];
  if (scale === undefined) throw new Error(`"${value}": unit "${suffix}" does not fit pg_settings unit "${unit}"`);
  return (Number(number) * scale) / base;
}

const booleans: Readonly<Record<string, string>> = { on: "on", true: "on", yes: "on", "1": "on", off: "off", false: "off", no: "off", "0": "off" };

/** Both sides in pg_settings' own terms, so "8GB" and "1048576" × 8kB compare equal. */
function normalized(expected: string, actual: string, meta: Pick<PgSetting, "unit" | "vartype">): [unknown, unknown] {
  switch (meta.vartype) {
    case "bool":
      return [booleans[expected.toLowerCase()], actual];
    case "integer":
    case "real":
      return meta.unit ? [inUnit(expected, meta.unit), Number(actual)] : [Number(expected), Number(actual)];
    default:
      return [expected, actual];
  }
}

let runtime: Runtime;
let pg: PostgresServer;
const readbackPassword = "Readback-Role-4d1c";
const tcpUrl = () => pg.url("postgres", "readback", readbackPassword);
const meta = new Map<string, PgSetting>();

async function readSettings(names: readonly string[]): Promise<Map<string, PgSetting>> {
  // Over TCP, as applications connect: the tcp_keepalives_* settings read 0 on a Unix socket session. Not as the
  // superuser, whom the rendered pg_hba.conf refuses over TCP: a role that may read every setting.
  const client = new Client({ connectionString: tcpUrl() });
  await client.connect();
  try {
    // Using a vector loads pgvector, which makes its hnsw.* real settings in this session (a placeholder until then);
    // LOAD itself is the superuser's.
    await client.query("SELECT '[1]'::vector");
    const rows = (await client.query<PgSetting & { name: string }>("SELECT name, setting, unit, vartype, source FROM pg_settings WHERE name = ANY($1::text[])", [names])).rows;
    return new Map(rows.map((r) => [r.name, r]));
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  runtime = await getRuntime();
  pg = await startPostgres({ runtime, postgresqlConf: renderPostgresqlConf(perfSpec), pgHbaConf: renderPgHba() });
  await pg.psql(`CREATE ROLE readback LOGIN PASSWORD '${readbackPassword}'; GRANT pg_read_all_settings TO readback; CREATE EXTENSION IF NOT EXISTS vector;`);
  for (const [name, setting] of await readSettings(postgresqlSettings(perfSpec).map((s) => s.name))) meta.set(name, setting);
});

afterAll(stopAll);

describe("the rendered postgresql.conf on a running PostgreSQL 17 (4Gi perf node)", () => {
  const settings = postgresqlSettings(perfSpec);

  it("knows every rendered setting", () => {
    expect(settings.filter((s) => !meta.has(s.name)).map((s) => s.name)).toEqual([]);
  });

  it.each(settings.filter((s) => !rigOwned.has(s.name)).map((s) => [s.name, s] as const))("%s reads back", (_name, s: PostgresSetting) => {
    const actual = meta.get(s.name);
    expect(actual, s.name).toBeDefined();
    if (!actual) return;
    expect(actual.source).toBe("configuration file");
    const [want, got] = normalized(s.value, actual.setting, actual);
    expect(got, `${s.name}: rendered ${s.value}, pg_settings ${actual.setting} ${actual.unit ?? ""}`).toEqual(want);
  });

  it("lets the rig override only its own settings (port, listen address, socket directory, certificate and key)", () => {
    for (const name of rigOwned) expect(meta.get(name)?.source).toBe("command line");
  });

  it("has no pg_file_settings error or unapplied entry, besides the rig's command-line overrides", async () => {
    const out = await pg.psql(
      "SELECT coalesce(json_agg(json_build_object('name', name, 'error', error, 'applied', applied)), '[]') FROM pg_file_settings WHERE error IS NOT NULL OR NOT applied;",
    );
    const problems = (JSON.parse(out) as { name: string; error: string | null; applied: boolean }[]).filter((p) => !rigOwned.has(p.name) || p.error !== "setting could not be applied");
    expect(problems).toEqual([]);
    expect(await pg.psql("SELECT count(*) FROM pg_settings WHERE pending_restart;")).toBe("0");
  });

  it("loads pgvector and pg_stat_statements", async () => {
    const out = await pg.psql(
      [
        "CREATE EXTENSION IF NOT EXISTS vector;",
        "CREATE EXTENSION pg_stat_statements;",
        "CREATE TABLE t (id int, v vector(3));",
        "INSERT INTO t VALUES (1, '[1,0,0]'), (2, '[0,1,0]');",
        "SELECT id FROM t ORDER BY v <=> '[0.9,0.1,0]' LIMIT 1;",
        "SELECT count(*) > 0 FROM pg_stat_statements;",
        "SELECT extversion FROM pg_extension WHERE extname = 'vector';",
      ].join("\n"),
    );
    expect(out.split("\n")).toEqual(["1", "t", runtime.versions.pgvector]);
  });

  it("logs queries over 100ms with the parseable prefix", async () => {
    // Over TCP (TLS, as every TCP client must), so the prefix carries a client address.
    const client = new Client({ connectionString: tcpUrl(), application_name: "readback" });
    await client.connect();
    try {
      await client.query("SELECT pg_sleep(0.15);");
    } finally {
      await client.end();
    }
    const log = pg.logText();
    expect(log).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC \[\d+\]: user=readback,db=postgres,app=readback,client=127\.0\.0\.1 LOG:  duration: \d+\.\d+ ms  statement: SELECT pg_sleep\(0\.15\);$/m);
  });
});

describe("the staging (32Gi) and prod (64Gi) renderings, read back with postgres -C", () => {
  beforeAll(async () => {
    await pg.stop();
  });

  async function readBack(spec: StackSpec): Promise<string[]> {
    pg.scratch.writeFile("data/postgresql.conf", renderPostgresqlConf(spec));
    const wrong: string[] = [];
    for (const s of postgresqlSettings(spec)) {
      const info = meta.get(s.name);
      if (!info) {
        wrong.push(`${s.name}: not known to the server`);
        continue;
      }
      const result = await runtime.exec("postgres", ["-D", pg.scratch.pathOf("data"), "-C", s.name]);
      if (result.code !== 0) {
        wrong.push(`${s.name}: postgres -C failed: ${result.stderr.trim()}`);
        continue;
      }
      const read = result.stdout.replace(/\n$/, ""); // not trim(): log_line_prefix ends in a space
      const [want, got] = normalized(s.value, read, info);
      if (JSON.stringify(want) !== JSON.stringify(got)) wrong.push(`${s.name}: rendered ${s.value}, server reads ${read} ${info.unit ?? ""}`);
    }
    return wrong;
  }

  it.each([
    ["staging", stagingSpec],
    ["prod", prodSpec],
  ])("%s: every setting parses and reads back", async (_name, spec) => {
    expect(await readBack(spec)).toEqual([]);
  });
});
