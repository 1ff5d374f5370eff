/**
 * The shared client (pgclient/connect.ts) without a database: what every client gets, and what a failed connect
 * throws (a loopback port nobody listens on refuses at once). Connecting for real is in every tests/real file.
 */
import * as net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "pg";
import { verifyFullQuery } from "../../configs/tls";
import { connect, connectFailure, newClient } from "../../pgclient/connect";
import { makeTestCertificates, startFakeTlsPostgres, type FakeTlsPostgres, type TestCertificates } from "./fake-tls-postgres";

/** What node-postgres will send as application_name (its resolved parameters are not in @types/pg). */
function applicationNameOf(client: Client): string | undefined {
  return (client as unknown as { connectionParameters: { application_name?: string } }).connectionParameters.application_name;
}

/** A loopback port that was free a moment ago: connecting to it is refused. */
let closedPort: number;

beforeAll(async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closedPort = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A server that accepts TCP and never answers: a connect timeout is the only way out. */
let silent: net.Server;
let silentPort: number;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  silent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  silentPort = (silent.address() as net.AddressInfo).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
});

describe("newClient", () => {
  it("tags the client with application_name and listens for its late errors", () => {
    const client = newClient("postgresql://app:pw@127.0.0.1:5432/app", "pgstack-test");
    expect(applicationNameOf(client)).toBe("pgstack-test");
    expect(client.listenerCount("error")).toBe(1);
    // A late error (server gone) is swallowed rather than crashing the process.
    expect(() => client.emit("error", new Error("server closed the connection unexpectedly"))).not.toThrow();
  });

  it("takes a ClientConfig with its own TLS and timeouts, and still sets application_name", () => {
    const client = newClient({ host: "127.0.0.1", port: 5432, user: "app", ssl: false, connectionTimeoutMillis: 1234 }, "pgstack-drift");
    expect(applicationNameOf(client)).toBe("pgstack-drift");
    expect(client.host).toBe("127.0.0.1");
  });
});

describe("connect", () => {
  it("a refused connection names the target with the password masked and keeps the errno", async () => {
    const url = `postgresql://app:s3cr%40t@127.0.0.1:${closedPort}/app`;
    const error = (await connect(url, "pgstack-test").catch((e: unknown) => e)) as Error & { code?: string };
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toMatch(new RegExp(`^cannot connect to postgresql://app:\\*\\*\\*@127\\.0\\.0\\.1:${closedPort}/app: .*ECONNREFUSED`));
    expect(error.message).not.toMatch(/s3cr/);
    expect(error.code).toBe("ECONNREFUSED");
  });

  it("a ClientConfig's connect timeout applies, and a caller's failure replaces the default error", async () => {
    const started = Date.now();
    const error = await connect({ host: "127.0.0.1", port: silentPort, user: "app", password: "hunter2", connectionTimeoutMillis: 300 }, "pgstack-test", (e) =>
      new Error(`custom: ${(e as Error).message}`),
    ).catch((e: Error) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((error as Error).message).toMatch(/^custom: .*timeout/i);
  });
});

describe("connectFailure", () => {
  it.each([
    ["a URL", "postgresql://app:pw@h:5432/db", "cannot connect to postgresql://app:***@h:5432/db: auth failed for *** "],
    ["a ClientConfig", { host: "h", port: 6432, user: "app", database: "db", password: "pw" }, "cannot connect to postgresql://app@h:6432/db: auth failed for *** "],
    ["a ClientConfig with a URL", { connectionString: "postgresql://app:pw@h/db" }, "cannot connect to postgresql://app:***@h/db: auth failed for *** "],
  ] as const)("%s", (_, target, message) => {
    expect(connectFailure(target, new Error("auth failed for pw ")).message).toBe(message);
  });
});

/**
 * Every client that opens its connection from a URL (postdeploy's hook and smoke benchmark, the canary, the local
 * cluster) gets the URL's TLS parameters through node-postgres: verify-full with the CA named by sslrootcert, the
 * host checked against the certificate (IP SANs for an address, node-postgres ≥ 8.23). Against the in-process fake.
 */
describe("a URL's TLS parameters", () => {
  let certs: TestCertificates;
  const servers: FakeTlsPostgres[] = [];
  beforeAll(async () => {
    certs = await makeTestCertificates();
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  afterAll(() => certs.remove());

  async function urlFor(certificate: "valid" | "expired" | "foreign" | "localhostOnly"): Promise<{ url: string; server: FakeTlsPostgres }> {
    const server = await startFakeTlsPostgres({ certificate: certs[certificate] });
    servers.push(server);
    return { url: `postgresql://app:Pgclient-Tls-7@127.0.0.1:${server.port}/app?${verifyFullQuery(certs.caFile)}`, server };
  }

  it("survive a ClientConfig built around the URL (the hook's wait, the canary's deadline)", () => {
    const client = newClient({ connectionString: `postgresql://app@127.0.0.1/app?${verifyFullQuery(certs.caFile)}`, connectionTimeoutMillis: 5000 }, "pgstack-test");
    const ssl = (client as unknown as { connectionParameters: { ssl: { ca?: string; rejectUnauthorized?: boolean } } }).connectionParameters.ssl;
    expect(ssl.ca).toBe(certs.ca.certificatePem);
    expect(ssl.rejectUnauthorized).not.toBe(false);
  });

  it("connect: a certificate from the URL's CA with the URL's address is accepted", async () => {
    const { url, server } = await urlFor("valid");
    const client = await connect(url, "pgstack-test");
    await client.end();
    expect(server.connections[0]).toMatchObject({ handshake: true, user: "app" });
  });

  it.each([
    ["foreign", /unable to verify the first certificate/],
    ["expired", /certificate has expired/],
    ["localhostOnly", /IP: 127\.0\.0\.1 is not in the cert's list/],
  ] as const)("connect: a %s certificate is refused before the login, the password masked", async (kind, message) => {
    const { url, server } = await urlFor(kind);
    const error = (await connect(url, "pgstack-test").catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/^cannot connect to postgresql:\/\/app:\*\*\*@127\.0\.0\.1:/);
    expect(error.message).not.toContain("Pgclient-Tls-7");
    expect(server.connections.every((c) => c.user === null)).toBe(true);
  });
});
