/**
 * The TLS cost comparison's pure parts: how a leg connects (its URL as node-postgres and pgbench read it), the order of
 * the legs in each round, the median and the verdict, and what SHOW CLIENTS must say for a leg to count.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { verifyFullQuery } from "../../configs/tls";
import { pgbenchTlsEnv } from "../../local/pgbench";
import { legOrder, legUrl } from "../../local/tls-cost";
import { newClient } from "../../pgclient/connect";
import { legEvidenceProblems, legSummary, median, tlsCostRow, type TlsLegRun } from "../../postdeploy/tls-cost";

const caDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-tls-cost-"));
const caFile = path.join(caDir, "ca.crt");
fs.writeFileSync(caFile, "-----BEGIN CERTIFICATE-----\ncluster CA\n-----END CERTIFICATE-----\n");
afterAll(() => fs.rmSync(caDir, { recursive: true, force: true }));

const pooled = `postgresql://app:p%40ss@127.0.0.1:6432/app?${verifyFullQuery(caFile)}`;
/**
 * What a smoke runner's client (pgclient newClient, as the smoke session opens it, with its own application_name)
 * would send: node-postgres's connection parameters, which its startup message and TLS negotiation read.
 */
function runnerParameters(url: string): { user: string; password: string; host: string; port: number; database: string; application_name: string; ssl: unknown } {
  const client = newClient(url, "pgstack-smoke-0");
  return (client as unknown as { connectionParameters: ReturnType<typeof runnerParameters> }).connectionParameters;
}

const run = (opsPerSec: number, extra: Partial<TlsLegRun> = {}): TlsLegRun => ({ opsPerSec, p50Ms: opsPerSec / 1000, p99Ms: opsPerSec / 100, errors: 0, ...extra });

describe("a leg's URL", () => {
  it("plain: a runner connects without TLS, named after the leg (the URL's application_name beats the runner's own)", () => {
    const params = runnerParameters(legUrl(pooled, "plain", "pgstack-tls-cost-plain"));
    expect(params.ssl).toBe(false);
    expect(params).toMatchObject({ user: "app", password: "p@ss", host: "127.0.0.1", port: 6432, database: "app", application_name: "pgstack-tls-cost-plain" });
  });

  it("tls: a runner verifies the server with the cluster's CA, named after the leg", () => {
    const params = runnerParameters(legUrl(pooled, "tls", "pgstack-tls-cost-tls"));
    expect(params.ssl).toMatchObject({ ca: fs.readFileSync(caFile, "utf8") });
    expect((params.ssl as { rejectUnauthorized?: boolean }).rejectUnauthorized).not.toBe(false);
    expect(params.application_name).toBe("pgstack-tls-cost-tls");
    // The cluster's own URL, unchanged, still connects over TLS: the leg adds its name and nothing else.
    expect(runnerParameters(pooled).ssl).toMatchObject({ ca: fs.readFileSync(caFile, "utf8") });
  });

  it("pgbench gets PGSSLMODE=disable for the plain leg and verify-full with the CA for the TLS leg", () => {
    const written: string[] = [];
    const dir = { writeFile: (name: string) => (written.push(name), `/rootfs-view/${name}`) };
    expect(pgbenchTlsEnv(new URL(legUrl(pooled, "plain", "x")), dir)).toEqual({ PGSSLMODE: "disable" });
    expect(written).toEqual([]);
    expect(pgbenchTlsEnv(new URL(legUrl(pooled, "tls", "x")), dir)).toEqual({ PGSSLMODE: "verify-full", PGSSLROOTCERT: "/rootfs-view/ca.crt" });
  });

  it("refuses to call a URL that does not verify fully the TLS leg", () => {
    expect(() => legUrl(pooled.replace("verify-full", "require"), "tls", "x")).toThrow(/sslmode=verify-full/);
    expect(() => legUrl("postgresql://app:pw@127.0.0.1:6432/app", "tls", "x")).toThrow(/sslmode=verify-full/);
  });
});

describe("rounds", () => {
  it("alternate which leg goes first", () => {
    expect([0, 1, 2, 3].map(legOrder)).toEqual([
      ["plain", "tls"],
      ["tls", "plain"],
      ["plain", "tls"],
      ["tls", "plain"],
    ]);
  });

  it.each([
    [[3], 3],
    [[5, 1, 3], 3],
    [[4, 1, 3, 2], 2.5],
  ])("median(%j) = %s", (values, expected) => {
    expect(median(values)).toBe(expected);
  });

  it("a leg keeps its median, its best, every round in order, and the latency of its median round", () => {
    const leg = legSummary([run(1000), run(1300, { errors: 2 }), run(900)]);
    expect(leg).toMatchObject({ opsPerSec: 1000, bestOpsPerSec: 1300, p50Ms: 1, p99Ms: 10, errors: 2 });
    expect(leg.rounds.map((r) => r.opsPerSec)).toEqual([1000, 1300, 900]);
    expect(legSummary([run(100, { connectionMs: 3 }), run(200, { connectionMs: 5 })]).connectionMs).toBe(4);
  });
});

describe("the verdict", () => {
  it("steady state meets the goal at 90 % of plain text, not below, and not with errors", () => {
    const met = tlsCostRow({ scenario: "search", client: "Node", plain: [run(1000), run(1000)], tls: [run(900), run(900)] });
    expect(met).toMatchObject({ ratio: 0.9, steadyState: true, meetsGoal: true });
    expect(tlsCostRow({ scenario: "search", client: "Node", plain: [run(1000)], tls: [run(899)] }).meetsGoal).toBe(false);
    expect(tlsCostRow({ scenario: "insert", client: "Node", plain: [run(1000)], tls: [run(990, { errors: 1 })] }).meetsGoal).toBe(false);
  });

  it("the reconnect case shows the handshake's cost and is not judged", () => {
    const row = tlsCostRow({ scenario: "reconnect", client: "pgbench -C", plain: [run(800, { connectionMs: 2 })], tls: [run(400, { connectionMs: 4 })] });
    expect(row).toMatchObject({ ratio: 0.5, steadyState: false, meetsGoal: null });
    expect([row.plain.connectionMs, row.tls.connectionMs]).toEqual([2, 4]);
  });
});

describe("what SHOW CLIENTS must say", () => {
  const base = { client: "Node", applicationName: "pgstack-tls-cost-x" };
  it.each([
    [{ leg: "plain", clients: 8, tls: [""] }, []],
    [{ leg: "tls", clients: 8, tls: ["TLSv1.3/TLS_AES_256_GCM_SHA384"] }, []],
    [{ leg: "plain", clients: 8, tls: ["", "TLSv1.3/TLS_AES_256_GCM_SHA384"] }, [/plain-text leg .* shows TLS on its connections \(TLSv1\.3/]],
    [{ leg: "tls", clients: 8, tls: ["", "TLSv1.3/TLS_AES_256_GCM_SHA384"] }, [/TLS leg .* shows connections without TLS/]],
    [{ leg: "tls", clients: 0, tls: [] }, [/listed none of its connections/]],
  ] as const)("%j", (evidence, problems) => {
    const found = legEvidenceProblems({ ...base, ...evidence });
    expect(found).toHaveLength(problems.length);
    problems.forEach((p, i) => expect(found[i]).toMatch(p));
  });
});
