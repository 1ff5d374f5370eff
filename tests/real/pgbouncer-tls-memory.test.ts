/**
 * PgBouncer's memory with TLS on every client: its resident set (VmRSS) on a perf cluster with none of our clients,
 * then with 2,000 idle clients connected through it with node-postgres and verify-full (20 handshakes at a time, as a
 * reconnect storm of an application would come), held open while measured. Each TLS client costs PgBouncer its
 * OpenSSL session and buffers besides its own state (production facts: tens of KB rather than ~2 KB), so the
 * Kubernetes limit configs/kubernetes-resources.ts gives it (`pgbouncerMemoryBytes(maxClientConn)`) must hold for
 * max_client_conn clients, all of them over TLS. The figures are printed; the budget is asserted for the measured
 * clients and for every slot of max_client_conn filled at the measured cost per client.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSpec, parseClusterFlags } from "../../cli/local";
import { readStackConfig } from "../../cli/stack-file";
import { pgbouncerMemoryBytes } from "../../configs/kubernetes-resources";
import { bytes } from "../../configs/units";
import { LocalCluster } from "../../local/cluster";
import { readState, type ClusterState } from "../../local/state";
import { teardownFromState } from "../../local/teardown";

const clients = 2_000;
const atOnce = 20;
/** Room above our 2,000 for the canary, pgbouncer_exporter and their reconnects. */
const maxClientConn = clients + 100;

const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-pgb-mem-"));
const name = `pgb-mem-${process.pid}`;
const perf = readStackConfig("perf");
const { spec } = clusterSpec(parseClusterFlags(["--memory", "1Gi"]).flags, {}, { ...perf, pgbouncer: { ...(perf.pgbouncer as object), maxClientConn } });
const cluster = new LocalCluster({ name, spec, stateRoot, hugePages: false });
const open: Client[] = [];

beforeAll(async () => {
  await cluster.start();
});

afterAll(async () => {
  await Promise.allSettled(open.map((c) => c.end()));
  await cluster.stop().catch(() => undefined);
  await teardownFromState(stateRoot, name).catch(() => undefined);
  fs.rmSync(stateRoot, { recursive: true, force: true });
});

/** PgBouncer's resident set in bytes, from /proc (VmRSS is in kB). */
function pgbouncerRss(): number {
  const state = readState(stateRoot, name) as ClusterState;
  const pid = state.servers.filter((s) => s.name === "pgbouncer").at(-1)?.pid;
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

/** SHOW CLIENTS on PgBouncer's admin console: how many clients it holds, and how many of them over TLS. */
async function clientsOnPgbouncer(): Promise<{ total: number; tls: number }> {
  const { rendered, info } = cluster;
  const state = readState(stateRoot, name) as ClusterState;
  const url = `postgresql://${rendered.roles.stats}:${encodeURIComponent(state.passwords.stats)}@127.0.0.1:${info.ports.pgbouncer}/pgbouncer?sslmode=verify-full&sslrootcert=${info.caPath}`;
  const admin = new Client({ connectionString: url });
  await admin.connect();
  try {
    const rows = (await admin.query("SHOW CLIENTS")).rows as { tls: string }[];
    return { total: rows.length, tls: rows.filter((r) => r.tls !== "").length };
  } finally {
    await admin.end();
  }
}

const mib = (n: number): string => `${(n / bytes.MiB).toFixed(1)} MiB`;

describe("PgBouncer's memory with TLS clients", () => {
  it(`stays within pgbouncerMemoryBytes(max_client_conn) with ${clients} idle verify-full clients`, async () => {
    const idle = pgbouncerRss();
    const started = Date.now();
    for (let i = 0; i < clients; i += atOnce) {
      const batch = Array.from({ length: Math.min(atOnce, clients - i) }, () => new Client({ connectionString: cluster.info.pooledUrl, application_name: "pgb-mem" }));
      open.push(...batch);
      await Promise.all(batch.map((c) => c.connect()));
    }
    const connectSeconds = (Date.now() - started) / 1000;
    const held = await clientsOnPgbouncer();
    // Every one of ours is on PgBouncer, over TLS (as is everyone else: the canary, the exporter, this query).
    expect(held.total).toBeGreaterThanOrEqual(clients);
    expect(held.tls).toBe(held.total);
    const loaded = pgbouncerRss();
    const perClient = (loaded - idle) / clients;
    const budget = pgbouncerMemoryBytes(maxClientConn);
    const full = idle + perClient * maxClientConn;
    const defaultBudget = pgbouncerMemoryBytes(2_000);
    console.log(
      [
        `PgBouncer ${cluster.info.runtime.versions.pgbouncer} VmRSS with TLS clients (node-postgres, verify-full, ${atOnce} connecting at a time):`,
        `  0 of our clients:       ${mib(idle)}`,
        `  ${clients} idle clients:     ${mib(loaded)} (${held.total} on PgBouncer, ${held.tls} over TLS; connected in ${connectSeconds.toFixed(1)} s)`,
        `  per TLS client:         ${(perClient / bytes.KiB).toFixed(1)} KiB (the budget allows 32 KiB a slot on top of 24 MiB)`,
        `  budget for ${maxClientConn}:        ${mib(budget)}; every slot filled at the measured cost: ${mib(full)}`,
        `  budget for 2000 (default max_client_conn): ${mib(defaultBudget)}; filled: ${mib(idle + perClient * 2_000)}`,
        // Where the budget's 32 KiB a slot stops covering a TLS client's cost, the fixed 24 MiB has to make up the rest.
        perClient > 32 * bytes.KiB
          ? `  the budget holds up to max_client_conn ≈ ${Math.floor((pgbouncerMemoryBytes(0) - idle) / (perClient - 32 * bytes.KiB))} with every client over TLS`
          : "  the budget's 32 KiB a slot covers a TLS client at any max_client_conn",
      ].join("\n"),
    );
    expect(loaded).toBeLessThanOrEqual(budget);
    expect(full).toBeLessThanOrEqual(budget);
  });
});
