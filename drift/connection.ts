/**
 * Connection input for live drift: a postgresql:// URL, the password from the URL or PGPASSWORD, TLS from its sslmode
 * and sslrootcert as libpq reads them (`sslFor`). The password is never printed: every message that could hold it
 * passes through `maskSecrets` (configs/secrets.ts), and URLs are shown without it.
 * Bad input and failed connections become one-line errors for people (`ConnectionError`), never a stack trace.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as tls from "node:tls";
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

/** libpq's sslmode values, weakest first. */
const sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
type SslMode = (typeof sslModes)[number];

/** The CA a URL trusts: a file's PEM, or libpq's `sslrootcert=system` (the public roots Node carries). */
type RootCertificate = { readonly path: string; readonly pem: string } | "system";

/**
 * node-postgres's `ssl` for a URL's sslmode and sslrootcert, as libpq means them, and nothing weaker:
 * - no sslmode: verify-full when the URL names a CA (node-postgres reads such a URL so, as libpq reads
 *   sslrootcert=system), else no TLS (node-postgres's default for a URL without TLS parameters; the stack's servers
 *   admit TLS only, so such a URL is refused by them, never silently served);
 * - disable, allow: no TLS (allow tries plaintext first in libpq too; node-postgres cannot retry with TLS after);
 * - prefer, require: TLS; the chain checked against the URL's CA when it names one (libpq checks it whenever it has a
 *   root certificate), no name check. prefer never falls back to plaintext here: node-postgres cannot, and a silent
 *   downgrade is worse than the error;
 * - verify-ca: TLS, the chain checked against the URL's CA; refused without one (libpq would read
 *   ~/.postgresql/root.crt, and Node's public roots would accept any public certificate for any name);
 * - verify-full: the chain and the name: the URL's host against the certificate's DNS SANs, or its IP SANs when the
 *   host is an address. Without a CA: Node's public roots, as node-postgres does.
 * The name check is ours (`checkServerIdentity` with the URL's host) rather than node-postgres's: node-postgres
 * before 8.23 checked an IP host against the name "localhost", and drift builds its ClientConfig itself.
 */
export function sslFor(mode: SslMode | undefined, root: RootCertificate | undefined, host: string): ClientConfig["ssl"] {
  const effective: SslMode = mode ?? (root === undefined ? "disable" : "verify-full");
  if (effective === "disable" || effective === "allow") return false;
  const ca = root === undefined || root === "system" ? {} : { ca: root.pem };
  // SNI carries DNS names only (RFC 6066, section 3).
  const servername = net.isIP(host) === 0 ? { servername: host } : {};
  switch (effective) {
    case "prefer":
    case "require":
      return root === undefined ? { rejectUnauthorized: false } : { ...ca, ...servername, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case "verify-ca":
      return { ...ca, ...servername, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case "verify-full":
      return { ...ca, ...servername, rejectUnauthorized: true, checkServerIdentity: (_name: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(host, cert) };
  }
}

/**
 * `postgresql://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…]`. The URL's password wins over `envPassword`
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
  let mode: SslMode | undefined;
  let root: RootCertificate | undefined;
  for (const [key, value] of url.searchParams) {
    if (key === "sslmode") {
      if (!(sslModes as readonly string[]).includes(value)) throw new ConnectionError(`${what}: sslmode=${value} is not one of ${sslModes.join(", ")}`);
      mode = value as SslMode;
    } else if (key === "sslrootcert") root = value === "" ? undefined : rootCertificate(value, what);
    else if (key === "host") host = value;
    else throw new ConnectionError(`${what}: URL parameter "${key}" is not supported here (supported: sslmode, sslrootcert, host)`);
  }
  if (host === "") throw new ConnectionError(`${what} ${shown()} names no host; write postgresql://user@host:port/database`);
  if (root === "system" && mode !== undefined && mode !== "verify-full") {
    // libpq refuses the same: the public roots vouch for a name, so only a check of the name makes them mean anything.
    throw new ConnectionError(`${what}: sslrootcert=system needs sslmode=verify-full, not sslmode=${mode}`);
  }
  if (mode === "verify-ca" && (root === undefined || root === "system")) {
    throw new ConnectionError(`${what}: sslmode=verify-ca needs sslrootcert=<the CA file>: without it any certificate from a public CA would do, for any name`);
  }
  const ssl = sslFor(mode, root, host);
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

/**
 * `sslrootcert`'s CA: "system" as libpq means it, else a file read now, so a path that cannot be read is an error at
 * once (an empty value is no CA, as node-postgres reads it).
 */
function rootCertificate(value: string, what: string): RootCertificate {
  if (value === "system") return "system";
  try {
    return { path: value, pem: fs.readFileSync(value, "utf8") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConnectionError(`${what}: sslrootcert ${value} cannot be read (${code}); give the CA file the server's certificate was issued by`);
  }
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
      // The stack's pg_hba.conf admits TLS only (hostssl): a URL without TLS parameters is refused here.
      if (/no encryption/.test(e.message ?? "")) message += "; the server admits TLS connections only: add ?sslmode=verify-full&sslrootcert=<the stack's CA file> to the URL";
      break;
    case "CERT_HAS_EXPIRED":
    case "CERT_NOT_YET_VALID":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      message = `cannot connect to ${where}: its TLS certificate was refused: ${e.message ?? e.code} (sslrootcert must name the CA that issued it, and verify-full needs the name ${target.host} in it)`;
      break;
    case "3D000":
      message = `cannot connect to ${where}: database "${target.database}" does not exist`;
      break;
    default: {
      const text = String(e?.message ?? error);
      if (/The server does not support SSL connections/.test(text)) {
        message = `cannot connect to ${where}: the server does not offer TLS, and the URL's sslmode asks for it`;
      } else if (/client password must be a string|SASL: SCRAM-SERVER-FIRST-MESSAGE/.test(text)) {
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
