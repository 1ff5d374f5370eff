/**
 * Connection input for live drift: a postgresql:// URL, the password from the URL or PGPASSWORD. The password is
 * never printed: every message that could hold it passes through `maskSecrets` (configs/secrets.ts), and URLs are
 * shown without it.
 * Bad input and failed connections become one-line errors for people (`ConnectionError`), never a stack trace.
 */
import * as os from "node:os";
import type { ClientConfig } from "pg";
import { maskSecrets, maskUrl, urlPasswords } from "../configs/secrets";

/** Bad connection input or a connection that failed: the message is complete and holds no password. */
export class ConnectionError extends Error {
  override readonly name = "ConnectionError";
}

export interface ConnectionTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  /** Not enumerable: console.log or JSON of a target does not show it. */
  readonly password: string | undefined;
  readonly ssl: ClientConfig["ssl"];
  /** The URL without the password, for messages and reports. */
  readonly display: string;
}

const sslModes: Readonly<Record<string, ClientConfig["ssl"]>> = {
  disable: false,
  allow: false,
  prefer: false,
  require: { rejectUnauthorized: false },
  "verify-ca": { rejectUnauthorized: true },
  "verify-full": { rejectUnauthorized: true },
};

/**
 * `postgresql://user[:password]@host[:port]/database[?sslmode=…]`. The URL's password wins over `envPassword`
 * (PGPASSWORD). `what` names the flag in messages (`--url`).
 */
export function parseConnectionUrl(text: string, envPassword: string | undefined, what = "--url"): ConnectionTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Shown with every password masked: in URL form, and as a libpq keyword (`password=…`), which no URL parser sees.
    const masked = maskSecrets(JSON.stringify(text), urlPasswords([text])).replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s"]+)/gi, "$1***");
    throw new ConnectionError(`${what} ${masked} is not a URL (a libpq key=value string is not accepted here); write postgresql://user@host:port/database`);
  }
  const shown = () => maskUrl(text);
  /** decodeURIComponent without its URIError: a malformed escape is the user's input, not a crash. */
  const decoded = (part: string, name: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new ConnectionError(`${what} ${shown()}: the ${name} has a malformed %-escape; write %25 for a literal %`);
    }
  };
  if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
    throw new ConnectionError(`${what} ${shown()} is not a postgresql:// URL; write postgresql://user@host:port/database`);
  }
  let host = decoded(url.hostname, "host").replace(/^\[(.*)\]$/, "$1");
  let ssl: ClientConfig["ssl"] = false;
  for (const [key, value] of url.searchParams) {
    if (key === "sslmode") {
      if (!(value in sslModes)) throw new ConnectionError(`${what}: sslmode=${value} is not one of ${Object.keys(sslModes).join(", ")}`);
      ssl = sslModes[value];
    } else if (key === "host") host = value;
    else throw new ConnectionError(`${what}: URL parameter "${key}" is not supported here (supported: sslmode, host)`);
  }
  if (host === "") throw new ConnectionError(`${what} ${shown()} names no host; write postgresql://user@host:port/database`);
  const port = url.port === "" ? 5432 : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConnectionError(`${what} ${shown()} has an invalid port`);
  const user = url.username === "" ? os.userInfo().username : decoded(url.username, "user name");
  const database = url.pathname.length > 1 ? decoded(url.pathname.slice(1), "database name") : user;
  if (database.includes("/")) throw new ConnectionError(`${what} ${shown()}: the database name may not contain "/"`);
  const password = url.password !== "" ? decoded(url.password, "password") : envPassword && envPassword !== "" ? envPassword : undefined;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const display = `postgresql://${encodeURIComponent(user)}@${hostPart}:${port}/${encodeURIComponent(database)}`;
  const target = { host, port, user, database, ssl, display } as ConnectionTarget;
  Object.defineProperty(target, "password", { value: password, enumerable: false });
  return target;
}

/** The same server and credentials, another database. */
export function withDatabase(target: ConnectionTarget, database: string): ConnectionTarget {
  const display = target.display.replace(/\/[^/]*$/, `/${encodeURIComponent(database)}`);
  const next = { host: target.host, port: target.port, user: target.user, database, ssl: target.ssl, display } as ConnectionTarget;
  Object.defineProperty(next, "password", { value: target.password, enumerable: false });
  return next;
}

/** Where and how to connect; application_name is the shared client's to set (pgclient/connect.ts). */
export function clientConfig(target: ConnectionTarget): ClientConfig {
  return {
    host: target.host,
    port: target.port,
    user: target.user,
    database: target.database,
    password: target.password,
    ssl: target.ssl,
    connectionTimeoutMillis: 10_000,
    query_timeout: 60_000,
  };
}

/** A failed connection or query as one line for people: what failed, where, and what to check. */
export function connectionErrorMessage(error: unknown, target: ConnectionTarget, what: string): string {
  const e = error as { code?: string; message?: string };
  const where = `${what} ${target.display}`;
  let message: string;
  switch (e?.code) {
    case "ECONNREFUSED":
      message = `cannot connect to ${where}: connection refused (is the server running and listening on ${target.host}:${target.port}?)`;
      break;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      message = `cannot connect to ${where}: host "${target.host}" not found`;
      break;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      message = `cannot connect to ${where}: ${e.code === "ETIMEDOUT" ? "timed out" : "host unreachable"}`;
      break;
    case "28P01":
      message = `cannot log in to ${where}: password authentication failed for user "${target.user}" (check the URL's password or PGPASSWORD)`;
      break;
    case "28000":
      message = `cannot log in to ${where}: ${e.message ?? "rejected by pg_hba.conf"}`;
      break;
    case "3D000":
      message = `cannot connect to ${where}: database "${target.database}" does not exist`;
      break;
    default: {
      const text = String(e?.message ?? error);
      if (/client password must be a string|SASL: SCRAM-SERVER-FIRST-MESSAGE/.test(text)) {
        message = `cannot log in to ${where}: the server asks for a password and none was given (put it in the URL or set PGPASSWORD)`;
      } else if (/timeout/i.test(text)) {
        message = `cannot connect to ${where}: no answer within 10 s`;
      } else {
        message = `${where} failed: ${text.split("\n")[0]}`;
      }
    }
  }
  return maskSecrets(message, [target.password]);
}
