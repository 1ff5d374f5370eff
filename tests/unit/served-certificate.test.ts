/**
 * pgclient/served-certificate.ts against an in-process fake server (tests/unit/fake-tls-postgres.ts): the certificate
 * is read whether or not it verifies, the verdicts say why, nothing logs in, every socket is closed when the answer
 * comes, and a server that declines TLS or never answers is an error within the timeout.
 */
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, issueServerCertificate } from "../../local/tls";
import { readServedCertificate, tlsEndpointOf } from "../../pgclient/served-certificate";
import { makeTestCertificates, notAfterSeconds, startFakeTlsPostgres, type FakeTlsPostgres, type SslAnswer, type TestCertificates } from "./fake-tls-postgres";

const day = 86_400_000;
let certs: TestCertificates;
let fake: FakeTlsPostgres | undefined;

beforeAll(async () => {
  certs = await makeTestCertificates();
});

afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

afterAll(() => certs.remove());

async function serve(certificate: keyof Pick<TestCertificates, "valid" | "expired" | "foreign" | "localhostOnly">, answer: SslAnswer = "tls"): Promise<FakeTlsPostgres> {
  fake = await startFakeTlsPostgres({ certificate: certs[certificate], answer });
  return fake;
}

describe("tlsEndpointOf", () => {
  it.each([
    ["postgresql://app:pw@127.0.0.1:6432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt", { host: "127.0.0.1", port: 6432, caPath: "/etc/pgstack/tls/ca.crt" }],
    ["postgresql://app@[::1]/app?sslmode=verify-full&sslrootcert=/run/my%20ca%26x.crt", { host: "::1", port: 5432, caPath: "/run/my ca&x.crt" }],
    ["postgres://app@db.example:5433/app", { host: "db.example", port: 5433, caPath: undefined }],
    ["postgresql://app@ignored:1/app?host=pgbouncer&port=6432&sslrootcert=", { host: "pgbouncer", port: 6432, caPath: undefined }],
  ])("%s", (url, expected) => {
    expect(tlsEndpointOf(url)).toEqual(expected);
  });

  it.each([
    ["not a url", /cannot be parsed/],
    ["postgresql:///app", /names no host/],
    ["postgresql://app@x/app?host=/var/run/postgresql", /Unix socket directory; TLS runs over TCP only/],
    ["postgresql://app@x/app?port=0", /port "0" is not a TCP port/],
  ])("refuses %s", (url, message) => {
    expect(() => tlsEndpointOf(url)).toThrow(message);
  });
});

describe("readServedCertificate", () => {
  it("reads a valid certificate, judges it verified, logs nobody in and closes before answering", async () => {
    const server = await serve("valid");
    const reading = await readServedCertificate({ host: "127.0.0.1", port: server.port, caPath: certs.caFile }, 2_000);
    expect(Math.floor(reading.notAfter.getTime() / 1000)).toBe(notAfterSeconds(certs.valid.certificatePem));
    expect(reading).toMatchObject({ verified: true, problem: null, subject: "CN=localhost", issuer: "CN=pgstack unit-test CA" });
    expect(server.connections).toHaveLength(1);
    expect(server.connections[0]).toMatchObject({ sslRequested: true, handshake: true, user: null, servername: null });
    await server.allClosed();
  });

  it("sends a DNS host as SNI and checks it against DNS SANs", async () => {
    const server = await serve("valid");
    // Node tries every address of localhost (autoSelectFamily), so ::1 first does not matter: the fake is on 127.0.0.1.
    const reading = await readServedCertificate({ host: "localhost", port: server.port, caPath: certs.caFile }, 2_000);
    expect(server.connections[0].servername).toBe("localhost");
    expect(reading.verified).toBe(true);
  });

  it("reads an expired certificate and says it expired", async () => {
    const server = await serve("expired");
    const reading = await readServedCertificate({ host: "127.0.0.1", port: server.port, caPath: certs.caFile }, 2_000);
    expect(reading.notAfter.getTime()).toBeLessThan(Date.now());
    expect(Math.floor(reading.notAfter.getTime() / 1000)).toBe(notAfterSeconds(certs.expired.certificatePem));
    expect(reading.verified).toBe(false);
    expect(reading.problem).toBe("it has expired (CERT_HAS_EXPIRED)");
  });

  it("reads a certificate from another CA and names the CA file it does not chain to", async () => {
    const server = await serve("foreign");
    const reading = await readServedCertificate({ host: "127.0.0.1", port: server.port, caPath: certs.caFile }, 2_000);
    expect(reading.issuer).toBe("CN=someone else's CA");
    expect(reading.verified).toBe(false);
    expect(reading.problem).toBe(`it was not issued by the CA in ${certs.caFile} (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
  });

  it("checks the IP against IP SANs: a certificate for the DNS name localhost does not do for 127.0.0.1", async () => {
    const server = await serve("localhostOnly");
    const reading = await readServedCertificate({ host: "127.0.0.1", port: server.port, caPath: certs.caFile }, 2_000);
    expect(reading.verified).toBe(false);
    expect(reading.problem).toMatch(/^it does not carry the name 127\.0\.0\.1 \(.*IP: 127\.0\.0\.1 is not in the cert's list/);
  });

  it("reports both problems when both hold", async () => {
    const stranger = await createCertificateAuthority({ commonName: "a stranger's CA", validMs: day });
    const certificate = await issueServerCertificate(stranger, { names: { dns: ["db.example"], ips: [] }, validMs: day });
    fake = await startFakeTlsPostgres({ certificate });
    const reading = await readServedCertificate({ host: "127.0.0.1", port: fake.port, caPath: certs.caFile }, 2_000);
    expect(reading.problem).toMatch(/^it was not issued by the CA in .*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\); it does not carry the name 127\.0\.0\.1 /);
  });

  it("fails with the server's 'N' when it declines TLS, and closes", async () => {
    const server = await serve("valid", "refuse");
    await expect(readServedCertificate({ host: "127.0.0.1", port: server.port, caPath: certs.caFile }, 2_000)).rejects.toThrow(
      `127.0.0.1:${server.port} answered the SSLRequest with 'N': it does not offer TLS`,
    );
    await server.allClosed();
  });

  it("gives up on a server that never answers within the timeout, and closes", async () => {
    const server = await serve("valid", "hang");
    const started = Date.now();
    await expect(readServedCertificate({ host: "127.0.0.1", port: server.port, caPath: certs.caFile }, 300)).rejects.toThrow(
      `no TLS handshake with 127.0.0.1:${server.port} within 300 ms`,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(server.connections[0].sslRequested).toBe(true);
    await server.allClosed();
  });

  it("fails at once, not after the timeout, when the server hangs up instead of answering", async () => {
    const server = await serve("valid", "close");
    const started = Date.now();
    await expect(readServedCertificate({ host: "127.0.0.1", port: server.port, caPath: certs.caFile }, 5_000)).rejects.toThrow(
      `127.0.0.1:${server.port} closed the connection without completing a TLS handshake`,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("names a CA file it cannot read", async () => {
    const server = await serve("valid");
    const missing = path.join(certs.dir, "missing.crt");
    await expect(readServedCertificate({ host: "127.0.0.1", port: server.port, caPath: missing }, 2_000)).rejects.toThrow(
      `cannot read the CA file ${missing} (sslrootcert): ENOENT`,
    );
    expect(server.connections).toHaveLength(0);
  });

  it("fails at once on a refused connection", async () => {
    const server = await serve("valid");
    const port = server.port;
    await server.close();
    fake = undefined;
    await expect(readServedCertificate({ host: "127.0.0.1", port, caPath: certs.caFile }, 2_000)).rejects.toThrow(/ECONNREFUSED/);
  });
});
