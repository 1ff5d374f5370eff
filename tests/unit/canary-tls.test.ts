/**
 * The canary's certificate gauge (`pgstack_canary_tls_certificate_not_after_seconds{target}`) against an in-process
 * fake PostgreSQL-protocol server with TLS (tests/unit/fake-tls-postgres.ts): every connection probe reads the
 * certificate the target presents and exports its notAfter, also when it does not verify, while the probe's own
 * verify-full login counts the failure as before. A server that declines TLS or hangs gives no reading, within the
 * connect timeout, and leaves no socket behind.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Canary } from "../../canary";
import { canaryMetrics, defaultCanarySettings, type CanaryTarget } from "../../configs/canary";
import { verifyFullQuery } from "../../configs/tls";
import { canaryCommand } from "../../cli/canary";
import { parseExposition } from "../exposition";
import { makeTestCertificates, notAfterSeconds, startFakeTlsPostgres, type FakeTlsPostgres, type SslAnswer, type TestCertificates } from "./fake-tls-postgres";

const password = "Canary-Tls-Secret-42";
const timeoutMs = 500;
let certs: TestCertificates;
const servers: FakeTlsPostgres[] = [];

beforeAll(async () => {
  certs = await makeTestCertificates();
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(() => certs.remove());

type Served = keyof Pick<TestCertificates, "valid" | "expired" | "foreign" | "localhostOnly">;

async function serve(certificate: Served, answer: SslAnswer = "tls"): Promise<FakeTlsPostgres> {
  const server = await startFakeTlsPostgres({ certificate: certs[certificate], answer });
  servers.push(server);
  return server;
}

/** The URL the stack gives the canary: verify-full against the stack's CA (configs/tls.ts). */
function urlOf(server: { port: number }): string {
  return `postgresql://app:${password}@127.0.0.1:${server.port}/app?${verifyFullQuery(certs.caFile)}`;
}

function canaryFor(pooled: { port: number }, direct?: { port: number }): { canary: Canary; log: string[] } {
  const log: string[] = [];
  const canary = new Canary({
    settings: { ...defaultCanarySettings, connectTimeoutMs: timeoutMs },
    pooledUrl: urlOf(pooled),
    directUrl: direct === undefined ? undefined : urlOf(direct),
    log: (line) => log.push(line),
  });
  return { canary, log };
}

async function metric(canary: Canary, name: string, target: CanaryTarget): Promise<number | undefined> {
  return parseExposition(await canary.metrics.text()).find((s) => s.name === name && s.labels.target === target)?.value;
}

const gauge = canaryMetrics.certificateNotAfter.name;
const attempts = canaryMetrics.connectionAttempts.name;
const failures = canaryMetrics.connectionFailures.name;

describe("the canary's certificate probe", () => {
  it("exports the notAfter of a valid certificate; the login works and is counted as before", async () => {
    const server = await serve("valid");
    const { canary, log } = canaryFor(server);
    expect(await metric(canary, gauge, "pgbouncer")).toBeUndefined();
    const probe = await canary.probe("pgbouncer");
    expect(probe.connection).toBeNull();
    expect(probe.certificate).toMatchObject({ ok: true, certificate: { verified: true, problem: null } });
    expect(await metric(canary, gauge, "pgbouncer")).toBe(notAfterSeconds(certs.valid.certificatePem));
    expect([await metric(canary, attempts, "pgbouncer"), await metric(canary, failures, "pgbouncer")]).toEqual([1, 0]);
    // Two connections: the probe's login (SELECT 1) and the certificate read, which never logs in.
    const logins = server.connections.filter((c) => c.user !== null);
    const bare = server.connections.filter((c) => c.user === null);
    expect(logins).toMatchObject([{ user: "app", handshake: true, queries: ["SELECT 1"] }]);
    expect(bare).toMatchObject([{ sslRequested: true, handshake: true, queries: [] }]);
    await server.allClosed();
    // The first certificate seen is logged once, with its serial and expiry; the password never.
    expect(log.join("\n")).toMatch(/^certificate of pgbouncer: serial [0-9A-F]+, valid until \d{4}-.*Z, verifies$/m);
    expect(log.join("\n")).not.toContain(password);
  });

  it("still reports an expired certificate; the verify-full login fails and is counted", async () => {
    const server = await serve("expired");
    const { canary, log } = canaryFor(server);
    const probe = await canary.probe("pgbouncer");
    expect(probe.connection).toMatch(/certificate has expired/);
    const seconds = await metric(canary, gauge, "pgbouncer");
    expect(seconds).toBe(notAfterSeconds(certs.expired.certificatePem));
    expect(seconds!).toBeLessThan(Date.now() / 1000);
    expect([await metric(canary, attempts, "pgbouncer"), await metric(canary, failures, "pgbouncer")]).toEqual([1, 1]);
    expect(log.join("\n")).toMatch(/certificate of pgbouncer: serial .*, does not verify: it has expired \(CERT_HAS_EXPIRED\)/);
    expect(server.connections.every((c) => c.user === null)).toBe(true);
    await server.allClosed();
  });

  it("reports a certificate from another CA, and counts the refused login", async () => {
    const server = await serve("foreign");
    const { canary, log } = canaryFor(server);
    const probe = await canary.probe("pgbouncer");
    expect(probe.connection).not.toBeNull();
    expect(await metric(canary, gauge, "pgbouncer")).toBe(notAfterSeconds(certs.foreign.certificatePem));
    expect(await metric(canary, failures, "pgbouncer")).toBe(1);
    expect(log.join("\n")).toContain(`does not verify: it was not issued by the CA in ${certs.caFile}`);
    await server.allClosed();
  });

  it("reports a certificate without the address the URL connects to (DNS localhost only, URL 127.0.0.1)", async () => {
    const server = await serve("localhostOnly");
    const { canary, log } = canaryFor(server);
    const probe = await canary.probe("pgbouncer");
    // node-postgres ≥ 8.23 checks the IP SAN too: the login is refused, as the certificate read says it would be.
    expect(probe.connection).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
    expect(await metric(canary, gauge, "pgbouncer")).toBe(notAfterSeconds(certs.localhostOnly.certificatePem));
    expect(await metric(canary, failures, "pgbouncer")).toBe(1);
    expect(log.join("\n")).toContain("does not verify: it does not carry the name 127.0.0.1");
  });

  it("has no reading from a server that declines TLS; the failed login is counted", async () => {
    const server = await serve("valid", "refuse");
    const { canary, log } = canaryFor(server);
    const probe = await canary.probe("pgbouncer");
    expect(probe.connection).toMatch(/does not support SSL/);
    expect(probe.certificate).toEqual({ ok: false, error: `127.0.0.1:${server.port} answered the SSLRequest with 'N': it does not offer TLS` });
    expect(await metric(canary, gauge, "pgbouncer")).toBeUndefined();
    expect(await metric(canary, failures, "pgbouncer")).toBe(1);
    expect(log.join("\n")).toContain("certificate of pgbouncer: cannot be read: 127.0.0.1:");
    await server.allClosed();
  });

  it("gives up on a server that never answers within one connect timeout, and closes both connections", async () => {
    const server = await serve("valid", "hang");
    const { canary } = canaryFor(server);
    const started = Date.now();
    const probe = await canary.probe("pgbouncer");
    const took = Date.now() - started;
    // Side by side: the login and the certificate read each give up after the timeout, the probe after one of them.
    expect(took).toBeGreaterThanOrEqual(timeoutMs - 50);
    expect(took).toBeLessThan(timeoutMs + 1_500);
    expect(probe.connection).not.toBeNull();
    expect(probe.certificate).toEqual({ ok: false, error: `no TLS handshake with 127.0.0.1:${server.port} within ${timeoutMs} ms` });
    expect(await metric(canary, gauge, "pgbouncer")).toBeUndefined();
    expect(await metric(canary, failures, "pgbouncer")).toBe(1);
    expect(server.connections).toHaveLength(2);
    await server.allClosed();
  });

  it("keeps the last certificate read when a later probe cannot read one", async () => {
    const server = await serve("valid");
    const { canary, log } = canaryFor(server);
    await canary.probe("pgbouncer");
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    const probe = await canary.probe("pgbouncer");
    expect(probe.certificate.ok).toBe(false);
    expect(await metric(canary, gauge, "pgbouncer")).toBe(notAfterSeconds(certs.valid.certificatePem));
    expect([await metric(canary, attempts, "pgbouncer"), await metric(canary, failures, "pgbouncer")]).toEqual([2, 1]);
    expect(log.join("\n")).toMatch(/certificate of pgbouncer: cannot be read: .*ECONNREFUSED/);
  });

  it("reads each target's own certificate: PgBouncer's and PostgreSQL's apart", async () => {
    const pooled = await serve("valid");
    const direct = await serve("expired");
    const { canary } = canaryFor(pooled, direct);
    await Promise.all([canary.probe("pgbouncer"), canary.probe("postgres")]);
    expect(await metric(canary, gauge, "pgbouncer")).toBe(notAfterSeconds(certs.valid.certificatePem));
    expect(await metric(canary, gauge, "postgres")).toBe(notAfterSeconds(certs.expired.certificatePem));
    expect(await metric(canary, failures, "pgbouncer")).toBe(0);
    expect(await metric(canary, failures, "postgres")).toBe(1);
  });
});

describe("pgstack canary --once", () => {
  it("prints each target's certificate beside its connection and fails on one that does not verify", async () => {
    const server = await serve("expired");
    const printed: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((...parts: unknown[]) => void printed.push(parts.join(" ")));
    vi.stubEnv("PGSTACK_POOLED_URL", urlOf(server));
    vi.stubEnv("PGSTACK_DIRECT_URL", "");
    try {
      const code = await canaryCommand.run(["--once", "--json", "--connect-timeout", "500ms"]);
      expect(code).toBe(1);
    } finally {
      spy.mockRestore();
      vi.unstubAllEnvs();
    }
    const report = JSON.parse(printed.join("\n")) as {
      ok: boolean;
      connections: Record<string, string | null>;
      certificates: Record<string, { ok: boolean; certificate: { notAfter: string; verified: boolean; problem: string } }>;
    };
    expect(report.ok).toBe(false);
    expect(report.connections.pgbouncer).toMatch(/certificate has expired/);
    expect(report.certificates.pgbouncer).toMatchObject({ ok: true, certificate: { verified: false, problem: "it has expired (CERT_HAS_EXPIRED)" } });
    expect(Math.floor(Date.parse(report.certificates.pgbouncer.certificate.notAfter) / 1000)).toBe(notAfterSeconds(certs.expired.certificatePem));
    expect(printed.join("\n")).not.toContain(password);
  });
});
