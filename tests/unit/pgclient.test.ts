/**
 * The shared client (pgclient/connect.ts) without a database: what every client gets, and what a failed connect
 * throws (a loopback port nobody listens on refuses at once). Connecting for real is in every tests/real file.
 */
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "pg";
import { connect, connectFailure, newClient } from "../../pgclient/connect";

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
