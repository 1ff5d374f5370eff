/**
 * The one way our code opens a node-postgres client, in a room of its own (pgclient/): postdeploy/, drift/, canary/
 * and local/ all need it, and the one room they may all import, configs/, must not touch `pg`. The rooms table lets
 * drift/ and canary/ import "a pg client": this is it. It imports configs/ (the masker) and `pg`, nothing else.
 */
import { Client, type ClientConfig } from "pg";
import { maskedError, maskUrl, urlPasswords } from "../configs/secrets";
import { postgresPort } from "../configs/postgresql";

/**
 * Where to connect: a postgresql:// URL (its sslmode, sslrootcert and options are node-postgres's to read), or a
 * ClientConfig for callers that parsed the target themselves or need more (drift's TLS modes and timeouts, the
 * canary's deadline). A ClientConfig around a URL (`{ connectionString, connectionTimeoutMillis }`) keeps the URL's
 * TLS: node-postgres lays what it parses from the URL over the rest. Never build a ClientConfig from the URL's parts
 * (host, port, user): that drops sslmode and sslrootcert, and the connection goes out without TLS.
 */
export type PgTarget = string | ClientConfig;

/**
 * A client that is not connected yet, tagged with `applicationName` (pg_stat_activity, PgBouncer's SHOW CLIENTS).
 * An 'error' event after connect — the server restarted, PgBouncer dropped the connection — would crash the process
 * if nobody listened; the next query on the client fails instead and its caller reports that.
 */
export function newClient(target: PgTarget, applicationName: string): Client {
  const config: ClientConfig = typeof target === "string" ? { connectionString: target } : target;
  const client = new Client({ ...config, application_name: applicationName });
  client.on("error", () => undefined);
  return client;
}

/** The target for a message, password masked. */
function describeTarget(target: PgTarget): string {
  if (typeof target === "string") return maskUrl(target);
  if (target.connectionString) return maskUrl(target.connectionString);
  return `postgresql://${target.user ?? ""}@${target.host ?? "localhost"}:${target.port ?? postgresPort}/${target.database ?? ""}`;
}

/** Every form of the target's password, for masking. */
function targetSecrets(target: PgTarget): string[] {
  if (typeof target === "string") return urlPasswords([target]);
  return [...urlPasswords([target.connectionString]), ...(typeof target.password === "string" ? [target.password] : [])];
}

/** `cannot connect to postgresql://app:***@host:6432/db: <the driver's message, passwords masked>`. */
export function connectFailure(target: PgTarget, error: unknown): Error {
  return maskedError(error, targetSecrets(target), `cannot connect to ${describeTarget(target)}`);
}

/**
 * Opens a client (see `newClient`). On failure the client is released and the error is `failure(error)`: by default
 * `connectFailure`, which names the target and never holds its password.
 */
export async function connect(
  target: PgTarget,
  applicationName: string,
  failure: (error: unknown) => Error = (error) => connectFailure(target, error),
): Promise<Client> {
  const client = newClient(target, applicationName);
  try {
    await client.connect();
    return client;
  } catch (error) {
    // Whatever failed (TLS negotiation, a refused login, the connect timeout), the socket is released now, not
    // whenever the server gets round to closing its side.
    await client.end().catch(() => undefined);
    throw failure(error);
  }
}
