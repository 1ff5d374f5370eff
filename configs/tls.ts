/**
 * TLS on every connection (guide, Security: "SSL/TLS for all connections"): where the certificate files are in the
 * containers, the names the server certificate must carry, and how every client the stack runs asks for
 * verification. Facts checked on PostgreSQL 17.12, PgBouncer 1.24.1, lib/pq (both exporters) and node-postgres.
 *
 * - One server certificate, signed by the stack's CA, serves PostgreSQL and PgBouncer: both sit in one network
 *   namespace and are reached under the same names.
 * - Every client verifies it fully: `sslmode=verify-full` with the stack's CA (`sslrootcert`), so a wrong CA or a
 *   name the certificate does not carry is refused. The programs beside the server connect to 127.0.0.1, so the
 *   certificate carries that address as an IP SAN (PgBouncer's server leg and lib/pq check IP SANs).
 * - PostgreSQL re-reads its certificate and key on reload (SIGHUP) and PgBouncer on RELOAD: a renewed certificate
 *   needs no restart. A key that does not match the new certificate is refused by both, which keep serving the old
 *   one ("SSL configuration was not reloaded"; "TLS configuration could not be reloaded, keeping old configuration").
 */

/** Where the containers mount the certificate Secret: cert-manager's key names (tls.crt, tls.key, ca.crt). */
export const containerTlsDir = "/etc/pgstack/tls";
export const containerTls = {
  certificate: `${containerTlsDir}/tls.crt`,
  key: `${containerTlsDir}/tls.key`,
  ca: `${containerTlsDir}/ca.crt`,
} as const;

/** The TLS files a server reads and a client trusts. */
export interface TlsFiles {
  /** The server certificate in PEM. */
  readonly certificate: string;
  /** Its private key in PEM: owned by the server's user with mode 0600, or by root with 0640 (PostgreSQL checks). */
  readonly key: string;
  /** The CA certificate clients verify the server with. */
  readonly ca: string;
}

/** TLS 1.2 at least (guide, Security); PostgreSQL's own default since 13, stated so a reviewer sees it. */
export const minimumTlsVersion = "TLSv1.2";

/** Names every server certificate carries: the loopback addresses the programs beside the server connect to. */
export const loopbackServerNames = { dns: ["localhost"], ips: ["127.0.0.1", "::1"] } as const;

/** Names a server certificate must carry, DNS and IP apart (an IP in a DNS SAN does not match). */
export interface ServerNames {
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

/** The loopback names plus a target's own (its Services, network aliases, published address), sorted, once each. */
export function serverNames(extra: { readonly dns?: readonly string[]; readonly ips?: readonly string[] } = {}): ServerNames {
  const unique = (items: readonly string[]) => [...new Set(items)].sort();
  return { dns: unique([...loopbackServerNames.dns, ...(extra.dns ?? [])]), ips: unique([...loopbackServerNames.ips, ...(extra.ips ?? [])]) };
}

/**
 * The query a libpq-style URL carries so that its client verifies the server (lib/pq, node-postgres ≥ 8.23 and
 * libpq agree on these two parameters): the CA at `caPath`, the name the URL connects to.
 */
export function verifyFullQuery(caPath: string): string {
  // Slashes may stay as they are in a query (RFC 3986); what would end or bend the value is escaped.
  return `sslmode=verify-full&sslrootcert=${caPath.replace(/[%&=#+ ?]/g, (c) => encodeURIComponent(c))}`;
}
