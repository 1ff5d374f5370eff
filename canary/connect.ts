/**
 * Connections the canary opens, each under a deadline: a server that accepts TCP but never answers (PgBouncer
 * waiting for a server that does not come, a hung PostgreSQL) must show as a failure after the timeout, never as
 * a canary that silently stops reporting.
 */
import type { Client } from "pg";
import { maskSecrets, urlPasswords } from "../configs/secrets";
import { newClient } from "../pgclient/connect";

export class DeadlineError extends Error {
  override readonly name = "DeadlineError";
}

/** A one-line description of an error: its message, else its code (ECONNREFUSED), else the messages it aggregates. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    const inner = error instanceof AggregateError ? error.errors.map(describeError).join("; ") : "";
    return error.message || inner || code || error.name;
  }
  return String(error);
}

/** Closes a client's socket at once, whatever state its protocol is in. */
export function destroyClient(client: Client): void {
  client.connection.stream.destroy();
  // end() settles pg's own bookkeeping; its promise may reject on a destroyed socket, which is expected here.
  client.end().catch(() => undefined);
}

/**
 * Runs `work`; when it has not settled within `ms`, calls `onExpire` (which must make `work` settle soon, e.g. by
 * destroying the socket) and rejects with a DeadlineError naming `what`.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string, onExpire: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      onExpire();
      reject(new DeadlineError(`${what} did not finish within ${ms} ms`));
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        if (!expired) resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!expired) reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * Connects and authenticates, then runs `SELECT 1`, all within `timeoutMs`: through PgBouncer a login alone can be
 * answered from PgBouncer's cache without any server, so only a query proves the path works.
 * Resolves to the open client; on failure the client is closed and the error's message carries no password.
 */
export async function openReadyConnection(url: string, applicationName: string, timeoutMs: number): Promise<Client> {
  // A server that goes away later fails the next query, which is counted there (newClient listens for 'error').
  const client = newClient({ connectionString: url, connectionTimeoutMillis: timeoutMs }, applicationName);
  try {
    await withDeadline(
      (async () => {
        await client.connect();
        await client.query("SELECT 1");
      })(),
      timeoutMs,
      "connect and SELECT 1",
      () => destroyClient(client),
    );
    return client;
  } catch (error) {
    destroyClient(client);
    throw new Error(maskSecrets(describeError(error), urlPasswords([url])));
  }
}

/** One connection attempt: open, prove, close. Resolves to null on success or to the (masked) failure message. */
export async function probeConnection(url: string, applicationName: string, timeoutMs: number): Promise<string | null> {
  let client: Client;
  try {
    client = await openReadyConnection(url, applicationName, timeoutMs);
  } catch (error) {
    return describeError(error);
  }
  await withDeadline(client.end(), 1_000, "disconnect", () => destroyClient(client)).catch(() => undefined);
  return null;
}
