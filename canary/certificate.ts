/**
 * The certificate a canary target presents: read on every connection probe and exported as its notAfter
 * (`pgstack_canary_tls_certificate_not_after_seconds`, configs/alert-sources.ts), so `CertificateExpiresSoon` warns
 * before verifying clients start being refused.
 *
 * How it is read — a handshake of its own beside the probe's login (pgclient/served-certificate.ts), not the
 * certificate of the probe's node-postgres connection — and why:
 * - the certificates that matter most are the ones that do not verify (expired, from another CA after a botched
 *   renewal, without the name the clients use). node-postgres verifies during the handshake and drops a refused
 *   certificate with the socket, so a probe that fails for that reason has nothing to report; our own handshake reads
 *   the certificate with verification off and judges it afterwards with the same CA and name;
 * - it needs no login: the expiry is still reported while logins fail for another reason (a wrong password, PgBouncer
 *   unable to reach PostgreSQL), and the reading does not depend on the URL's credentials at all;
 * - node:net and node:tls only: reading the peer certificate off a node-postgres client would go through
 *   `client.connection.stream`, which is not node-postgres's public API.
 * What it costs: one more TCP connection and TLS handshake per target per probe (by default one a second), closed
 * cleanly (close_notify) before any startup message. Checked on PostgreSQL 17.12 and PgBouncer 1.24.1: PostgreSQL
 * forks a backend for it that logs "connection received" (log_connections) and exits at the EOF without an error;
 * PgBouncer logs nothing for it. Cut off without the close_notify, PostgreSQL would log "could not accept SSL
 * connection: EOF detected" and PgBouncer a "TLS handshake error" warning every time.
 */
import { readServedCertificate, tlsEndpointOf, type ServedCertificate } from "../pgclient/served-certificate";

export type { ServedCertificate };

/** What one certificate read gave: the certificate (verified or not), or why there was none to read. */
export type CertificateReading = { readonly ok: true; readonly certificate: ServedCertificate } | { readonly ok: false; readonly error: string };

/**
 * The certificate the server of `url` (a postgresql:// URL: its host, port and `sslrootcert`) presents, read within
 * `timeoutMs`. Never rejects: a failure is a reading with its reason.
 */
export async function readTargetCertificate(url: string, timeoutMs: number): Promise<CertificateReading> {
  try {
    return { ok: true, certificate: await readServedCertificate(tlsEndpointOf(url), timeoutMs) };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** "serial 1A2B…, valid until 2026-03-01T00:00:00.000Z, verifies" or "…, does not verify: it has expired (…)". */
export function describeReading(reading: CertificateReading): string {
  if (!reading.ok) return `cannot be read: ${reading.error}`;
  const c = reading.certificate;
  const verdict = c.verified ? "verifies" : `does not verify: ${c.problem}`;
  return `serial ${c.serial}, valid until ${c.notAfter.toISOString()}, ${verdict}`;
}
