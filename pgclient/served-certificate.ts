/**
 * The certificate a PostgreSQL-protocol server (PostgreSQL or PgBouncer) presents, read from a TLS handshake of our
 * own: PostgreSQL's SSLRequest, its 'S', a TLS handshake with verification switched off, the peer certificate, and
 * a clean close before any startup message, so no login happens and nothing is sent that a server could refuse.
 *
 * Read, then judged: the chain is checked against the CA the client URL names (`sslrootcert`) and the name against
 * the URL's host, as a client with sslmode=verify-full would check them, and both verdicts are returned beside the
 * certificate instead of hiding it. A certificate that has expired or comes from another CA is exactly the one an
 * operator needs to see, and a verifying client (node-postgres, libpq) throws it away with the handshake.
 *
 * Only node:net and node:tls: no private part of node-postgres, so a driver upgrade cannot break it.
 */
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";

/** Where a client URL points and which CA it trusts, as node-postgres and libpq read the URL. */
export interface TlsEndpoint {
  readonly host: string;
  readonly port: number;
  /** The URL's `sslrootcert`: the CA file to verify with; undefined: Node's bundled public roots. */
  readonly caPath: string | undefined;
}

/**
 * The endpoint of a postgresql:// URL: `host` and `port` query parameters win over the authority (as they do for
 * node-postgres and libpq), the port defaults to 5432. Throws an Error for people when the URL names no TCP host.
 */
export function tlsEndpointOf(url: string): TlsEndpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error("the URL cannot be parsed");
  }
  const host = parsed.searchParams.get("host") ?? decodeURIComponent(parsed.hostname).replace(/^\[(.*)\]$/, "$1");
  if (host === "") throw new Error("the URL names no host");
  // A Unix socket: PostgreSQL answers an SSLRequest there with 'N', and no client asks.
  if (host.startsWith("/")) throw new Error(`${host} is a Unix socket directory; TLS runs over TCP only`);
  const portText = parsed.searchParams.get("port") ?? (parsed.port === "" ? "5432" : parsed.port);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new Error(`port "${portText}" is not a TCP port`);
  const caPath = parsed.searchParams.get("sslrootcert") ?? undefined;
  return { host, port, caPath: caPath === "" ? undefined : caPath };
}

/** The certificate a server presented, and whether a verify-full client would accept it. */
export interface ServedCertificate {
  /** The end of its validity. */
  readonly notAfter: Date;
  readonly notBefore: Date;
  /** Upper-case hex, as OpenSSL prints it. */
  readonly serial: string;
  /** One line each, "CN=…, O=…". */
  readonly subject: string;
  readonly issuer: string;
  /** Chain checked against the CA (dates included) and the name against the host: what verify-full demands. */
  readonly verified: boolean;
  /** Why verify-full would refuse it (chain and name, both when both fail); null when `verified`. */
  readonly problem: string | null;
}

/** PostgreSQL's SSLRequest: length 8, request code 80877103 (1234 << 16 | 5679), src/include/libpq/pqcomm.h. */
const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** After our close_notify a server closes at once; one that does not is cut off after this. */
const closeGraceMs = 1_000;

/** OpenSSL's verification codes as Node reports them, in words: the usual ways a stack's certificate goes wrong. */
const chainProblems: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: "it has expired",
  CERT_NOT_YET_VALID: "it is not valid yet",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "it was not issued by the trusted CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "it was not issued by the trusted CA",
  UNABLE_TO_GET_ISSUER_CERT: "it was not issued by the trusted CA",
  SELF_SIGNED_CERT_IN_CHAIN: "its chain ends in a CA that is not the trusted one",
  DEPTH_ZERO_SELF_SIGNED_CERT: "it is self-signed, not issued by the trusted CA",
  CERT_SIGNATURE_FAILURE: "its signature does not verify",
  CERT_REVOKED: "it was revoked",
};

function chainProblem(code: string, caPath: string | undefined): string {
  const trusted = caPath === undefined ? "Node's public root CAs" : `the CA in ${caPath}`;
  const words = chainProblems[code];
  return words === undefined ? `its chain does not verify against ${trusted} (${code})` : `${words.replace("the trusted CA", trusted).replace("the trusted one", trusted)} (${code})`;
}

/** Reads the CA file an endpoint names; a file that cannot be read is an error naming it. */
async function caOf(endpoint: TlsEndpoint): Promise<string | undefined> {
  if (endpoint.caPath === undefined) return undefined;
  try {
    return await fs.promises.readFile(endpoint.caPath, "utf8");
  } catch (error) {
    throw new Error(`cannot read the CA file ${endpoint.caPath} (sslrootcert): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/**
 * A TLS handshake with the PostgreSQL-protocol server at `host`:`port`, and nothing more: PostgreSQL's SSLRequest, its
 * 'S', the handshake with `options` (verification off unless the caller asks for it), `read(socket)` on the secured
 * socket, and a clean close before any startup message. The one such handshake of the project: the canary's
 * certificate reading below and the perf cluster's checks (local/tls.ts) both go through it. Rejects when there is
 * nothing to read: the connection is refused, the server declines TLS ('N') or hangs up, refuses the handshake (an
 * old protocol), `read` throws, or the whole exchange does not finish within `timeoutMs`. Every socket is closed
 * before the promise settles (after a reading, a server that does not close its side is cut off after a second).
 */
export function pgTlsHandshake<T>(host: string, port: number, options: tls.ConnectionOptions, timeoutMs: number, read: (secured: tls.TLSSocket) => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const socket = net.connect({ host, port });
    let secured: tls.TLSSocket | undefined;
    let settled = false;
    /** Settles once, after the sockets are gone: a caller that has its answer holds no socket of ours. */
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      const open = secured ?? socket;
      if (open.destroyed) return outcome();
      open.once("close", outcome);
      open.destroy();
    };
    const fail = (error: Error): void => finish(() => reject(error));
    const deadline = setTimeout(() => fail(new Error(`no TLS handshake with ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    // `on`, not `once`: a second error (a reset while closing) must find a listener too; `fail` acts once.
    socket.on("error", fail);
    socket.once("connect", () => socket.write(sslRequest));
    // A server that hangs up instead of answering (too many connections at the TCP level, a proxy with no backend)
    // is an answer too, not something to wait out. After a reading, `settled` makes this a no-op.
    socket.once("close", () => fail(new Error(`${host}:${port} closed the connection without completing a TLS handshake`)));
    socket.once("data", (answer: Buffer) => {
      // libpq refuses bytes after the 'S' as well: they arrived unencrypted, so anyone on the path could have put
      // them there (CVE-2021-23222).
      if (answer.length !== 1 || answer[0] !== 0x53) {
        const shown = answer[0] === 0x4e ? "'N': it does not offer TLS" : `${JSON.stringify(answer.subarray(0, 16).toString("latin1"))}, not 'S'`;
        fail(new Error(`${host}:${port} answered the SSLRequest with ${shown}`));
        return;
      }
      secured = tls.connect({
        // SNI carries DNS names only (RFC 6066, section 3); PostgreSQL and PgBouncer ignore it either way.
        servername: net.isIP(host) === 0 ? host : undefined,
        rejectUnauthorized: false,
        ...options,
        socket,
      });
      secured.on("error", fail);
      secured.once("secureConnect", () => {
        let reading: T;
        try {
          reading = read(secured as tls.TLSSocket);
        } catch (error) {
          fail(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        // A clean close (close_notify, then FIN): PostgreSQL 17 and PgBouncer 1.24 then log no error, where a cut
        // connection gets "could not accept SSL connection: EOF detected" and "TLS handshake error … unexpected eof".
        settled = true;
        clearTimeout(deadline);
        const sockets = secured as tls.TLSSocket;
        const cutoff = setTimeout(() => sockets.destroy(), closeGraceMs);
        sockets.once("close", () => {
          clearTimeout(cutoff);
          resolve(reading);
        });
        sockets.end();
      });
    });
  });
}

/**
 * Connects to `endpoint`, asks for TLS, completes the handshake and returns the certificate the server presented
 * with the verify-full verdict. The CA file is read on every call, as node-postgres reads it on every connect, so a
 * renewed CA is picked up. Rejects as `pgTlsHandshake` does.
 */
export async function readServedCertificate(endpoint: TlsEndpoint, timeoutMs: number): Promise<ServedCertificate> {
  const ca = await caOf(endpoint);
  const { host, port } = endpoint;
  const options: tls.ConnectionOptions = {
    ca,
    // Read first, judge after: the verdicts below are returned, not enforced.
    rejectUnauthorized: false,
    // Node would fold the name check into authorizationError, and only when the chain verifies; it is done below
    // for every certificate, so both verdicts are reported separately.
    checkServerIdentity: () => undefined,
  };
  return pgTlsHandshake(host, port, options, timeoutMs, (secured) => {
    // One read of the peer certificate: on Node 20, getPeerCertificate() after getPeerX509Certificate() returns an
    // object without its subjectaltname, and the name check would then fail for every certificate.
    const legacy = secured.getPeerCertificate();
    if (legacy?.raw === undefined) throw new Error(`${host}:${port} completed the TLS handshake without a certificate`);
    const peer = new X509Certificate(legacy.raw);
    const chainCode = secured.authorized ? null : String(secured.authorizationError ?? "UNKNOWN");
    // tls.checkServerIdentity matches an IP host against IP SANs only, a DNS host against DNS SANs: what verify-full
    // means (an IP written as a DNS SAN does not count).
    const identity = tls.checkServerIdentity(host, legacy);
    const problems = [
      ...(chainCode === null ? [] : [chainProblem(chainCode, endpoint.caPath)]),
      ...(identity === undefined ? [] : [`it does not carry the name ${host} (${identity.message})`]),
    ];
    return describe(peer, problems);
  });
}

function describe(peer: X509Certificate, problems: readonly string[]): ServedCertificate {
  return {
    notAfter: new Date(peer.validTo),
    notBefore: new Date(peer.validFrom),
    serial: peer.serialNumber.toUpperCase(),
    subject: peer.subject.replace(/\n/g, ", "),
    issuer: peer.issuer.replace(/\n/g, ", "),
    verified: problems.length === 0,
    problem: problems.length === 0 ? null : problems.join("; "),
  };
}
