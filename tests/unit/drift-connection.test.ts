/**
 * `drift --live --url`: what a person types is either a usable target or one clean error, and a password in it never
 * reaches the message, whatever the shape of the mistake.
 */
import { X509Certificate } from "node:crypto";
import type { ConnectionOptions, PeerCertificate } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { verifyFullQuery } from "../../configs/tls";
import { ConnectionError, connectionErrorMessage, parseConnectionUrl, type ConnectionTarget } from "../../drift/connection";
import { readPgBouncer } from "../../drift/live-query";
import { makeTestCertificates, startFakeTlsPostgres, type FakeTlsPostgres, type SslAnswer, type TestCertificates } from "./fake-tls-postgres";

function failure(text: string): ConnectionError {
  try {
    parseConnectionUrl(text, undefined);
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectionError);
    return e as ConnectionError;
  }
  throw new Error(`${text} was accepted`);
}

describe("parseConnectionUrl refuses bad input without showing a password", () => {
  it.each([
    ["a libpq keyword string", "host=db.example password=hunter2-kv user=app", "is not a URL"],
    ["a malformed %-escape in the password", "postgresql://app:hun%ZZter2-esc@db.example:5432/app", "the password has a malformed %-escape"],
    ["a malformed %-escape in the user", "postgresql://a%ZZp:hunter2-user@db.example/app", "the user name has a malformed %-escape"],
    ["another scheme", "mysql://app:hunter2-scheme@db.example/app", "is not a postgresql:// URL"],
  ])("%s", (_, text, expected) => {
    const error = failure(text);
    expect(error.message).toContain(expected);
    expect(error.message).not.toMatch(/hunter2|hun%ZZter2/);
  });

  it("still reads a good URL, its password kept out of the display", () => {
    const target = parseConnectionUrl("postgresql://app:s%40cret@db.example:6543/vectors?sslmode=verify-full", undefined);
    expect([target.host, target.port, target.user, target.database, target.password]).toEqual(["db.example", 6543, "app", "vectors", "s@cret"]);
    expect(target.display).toBe("postgresql://app@db.example:6543/vectors");
    expect(JSON.stringify(target)).not.toContain("cret");
  });
});

/**
 * TLS for `drift --live`: the URL's sslmode and sslrootcert as libpq reads them, nothing weaker, and the name checked
 * by drift itself against the URL's host. Against the in-process fake server (tests/unit/fake-tls-postgres.ts),
 * through the code drift runs (readPgBouncer: connect, SHOW CONFIG, SHOW DATABASES).
 */
describe("drift's TLS", () => {
  let certs: TestCertificates;
  const servers: FakeTlsPostgres[] = [];

  beforeAll(async () => {
    certs = await makeTestCertificates();
  });

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  afterAll(() => certs.remove());

  async function serve(certificate: "valid" | "expired" | "foreign" | "localhostOnly", answer: SslAnswer = "tls"): Promise<FakeTlsPostgres> {
    const server = await startFakeTlsPostgres({ certificate: certs[certificate], answer });
    servers.push(server);
    return server;
  }

  /** PgBouncer's admin console on the fake, with `query` appended; the password is there to be kept out of messages. */
  function target(server: FakeTlsPostgres, query: string, host = "127.0.0.1"): ConnectionTarget {
    return parseConnectionUrl(`postgresql://admin:Drift-Tls-Pw-9@${host}:${server.port}/pgbouncer?${query}`, undefined);
  }

  const verifyFull = () => verifyFullQuery(certs.caFile);

  describe("reads the URL", () => {
    it.each([
      ["", false],
      ["sslmode=disable", false],
      ["sslmode=allow", false],
      ["sslmode=prefer", { rejectUnauthorized: false }],
      ["sslmode=require", { rejectUnauthorized: false }],
    ])("%s → %j", (query, ssl) => {
      expect(parseConnectionUrl(`postgresql://app@db.example/app?${query}`, undefined).ssl).toEqual(ssl);
    });

    it("verify-full: the CA from sslrootcert, SNI for a DNS name, rejectUnauthorized", () => {
      const ssl = parseConnectionUrl(`postgresql://app@db.example/app?${verifyFull()}`, undefined).ssl as ConnectionOptions;
      expect(ssl).toMatchObject({ ca: certs.ca.certificatePem, servername: "db.example", rejectUnauthorized: true });
      const ip = parseConnectionUrl(`postgresql://app@127.0.0.1/app?${verifyFull()}`, undefined).ssl as ConnectionOptions;
      expect(ip.servername).toBeUndefined();
    });

    it("a CA without sslmode means verify-full, as node-postgres reads such a URL", () => {
      const ssl = parseConnectionUrl(`postgresql://app@127.0.0.1/app?sslrootcert=${certs.caFile}`, undefined).ssl as ConnectionOptions;
      expect(ssl).toMatchObject({ ca: certs.ca.certificatePem, rejectUnauthorized: true });
      expect(ssl.checkServerIdentity!("127.0.0.1", legacyOf(certs.localhostOnly.certificatePem))).toBeInstanceOf(Error);
    });

    it("checks the name itself, against the URL's host, whatever name the driver passes", () => {
      const ssl = parseConnectionUrl(`postgresql://app@127.0.0.1/app?${verifyFull()}`, undefined).ssl as ConnectionOptions;
      // node-postgres before 8.23 passed "localhost" for an IP host: a certificate for localhost must still fail.
      expect(ssl.checkServerIdentity!("localhost", legacyOf(certs.localhostOnly.certificatePem))?.message).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
      expect(ssl.checkServerIdentity!("localhost", legacyOf(certs.valid.certificatePem))).toBeUndefined();
    });

    it.each([
      ["sslmode=verify-ca", /sslmode=verify-ca needs sslrootcert=<the CA file>/],
      ["sslmode=verify-ca&sslrootcert=system", /sslrootcert=system needs sslmode=verify-full, not sslmode=verify-ca/],
      ["sslmode=require&sslrootcert=system", /sslrootcert=system needs sslmode=verify-full, not sslmode=require/],
      ["sslmode=verify-full&sslrootcert=/nonexistent/ca.crt", /sslrootcert \/nonexistent\/ca\.crt cannot be read \(ENOENT\)/],
      ["sslcert=/x", /URL parameter "sslcert" is not supported here \(supported: sslmode, sslrootcert, host\)/],
    ])("refuses %s", (query, message) => {
      const error = failure(`postgresql://app:Drift-Tls-Pw-9@db.example/app?${query}`);
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain("Drift-Tls-Pw-9");
    });
  });

  describe("connects", () => {
    it("verify-full to an IP: accepted when the certificate carries the IP SAN, no SNI sent", async () => {
      const server = await serve("valid");
      await expect(readPgBouncer(target(server, verifyFull()))).resolves.toEqual({ config: new Map(), databases: [] });
      expect(server.connections[0]).toMatchObject({ handshake: true, servername: null, user: "admin", queries: ["SHOW CONFIG", "SHOW DATABASES"] });
    });

    it("verify-full to a DNS name: accepted, the name sent as SNI", async () => {
      const server = await serve("valid");
      await expect(readPgBouncer(target(server, verifyFull(), "localhost"))).resolves.toBeDefined();
      expect(server.connections.find((c) => c.handshake)?.servername).toBe("localhost");
    });

    it("verify-full refuses a certificate without the URL's address (DNS localhost only, URL 127.0.0.1)", async () => {
      const server = await serve("localhostOnly");
      const error = await readPgBouncer(target(server, verifyFull())).catch((e: Error) => e);
      expect(error).toBeInstanceOf(ConnectionError);
      expect((error as Error).message).toMatch(
        new RegExp(`^cannot connect to PgBouncer at postgresql://admin@127\\.0\\.0\\.1:${server.port}/pgbouncer: its TLS certificate was refused: .*IP: 127\\.0\\.0\\.1 is not in the cert's list`),
      );
      expect(server.connections.every((c) => c.user === null)).toBe(true);
    });

    it.each([
      ["foreign", /its TLS certificate was refused: unable to verify the first certificate/],
      ["expired", /its TLS certificate was refused: certificate has expired/],
    ] as const)("verify-full refuses a %s certificate before logging in", async (kind, message) => {
      const server = await serve(kind);
      const error = await readPgBouncer(target(server, verifyFull())).catch((e: Error) => e);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain("Drift-Tls-Pw-9");
      expect(server.connections.every((c) => c.user === null)).toBe(true);
    });

    it("verify-ca checks the chain only: another name is accepted, another CA is not", async () => {
      const named = await serve("localhostOnly");
      await expect(readPgBouncer(target(named, `sslmode=verify-ca&sslrootcert=${certs.caFile}`))).resolves.toBeDefined();
      const foreign = await serve("foreign");
      await expect(readPgBouncer(target(foreign, `sslmode=verify-ca&sslrootcert=${certs.caFile}`))).rejects.toThrow(/its TLS certificate was refused/);
    });

    it("require: unverified without a CA, the chain checked with one (libpq's rule)", async () => {
      const server = await serve("foreign");
      await expect(readPgBouncer(target(server, "sslmode=require"))).resolves.toBeDefined();
      await expect(readPgBouncer(target(server, `sslmode=require&sslrootcert=${certs.caFile}`))).rejects.toThrow(/its TLS certificate was refused/);
    });

    it("prefer never falls back to plaintext: a server without TLS is an error", async () => {
      const server = await serve("valid", "refuse");
      await expect(readPgBouncer(target(server, "sslmode=prefer"))).rejects.toThrow(/the server does not offer TLS, and the URL's sslmode asks for it/);
      expect(server.connections.every((c) => c.user === null)).toBe(true);
    });
  });

  it("explains a pg_hba.conf that admits TLS only", () => {
    const t = parseConnectionUrl("postgresql://app@127.0.0.1:5432/app", undefined);
    const message = connectionErrorMessage(
      { code: "28000", message: 'no pg_hba.conf entry for host "127.0.0.1", user "app", database "app", no encryption' },
      t,
      "PostgreSQL at",
    );
    expect(message).toMatch(/no encryption; the server admits TLS connections only: add \?sslmode=verify-full&sslrootcert=<the stack's CA file> to the URL$/);
  });
});

function legacyOf(pem: string): PeerCertificate {
  const c = new X509Certificate(pem);
  return { subject: {}, subjectaltname: c.subjectAltName ?? "" } as unknown as PeerCertificate;
}
