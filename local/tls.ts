/**
 * Throw-away certificates for the perf cluster and the real-server rig: a CA per cluster (or per test process), a
 * server certificate for the rendered server names, the checks a certificate and its key must pass before a server
 * is given them, and a look at the certificate a server actually serves. The one place this project makes
 * certificates; the container targets get theirs from @pulumi/tls or cert-manager (configs/stack-spec.ts TlsSpec).
 *
 * EC P-256 keys and ECDSA-SHA256 signatures (about 50 ms a certificate with @peculiar/x509 on WebCrypto): accepted by
 * OpenSSL 3 in PostgreSQL 17 and PgBouncer 1.24, by Go's crypto/tls in both exporters and by Node in the canary.
 */
import "reflect-metadata";
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as tls from "node:tls";
import { pgTlsHandshake } from "../pgclient/served-certificate";
import * as x509 from "@peculiar/x509";
import type { ServerNames } from "../configs/tls";

// Node's WebCrypto; @peculiar/x509 types it with the DOM's names, which this project's lib setting does not load.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
type KeyPair = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"];
type SigningKey = KeyPair["privateKey"];

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** A CA's certificate and its private key (PKCS#8 PEM: a secret, written only to 0600 files, never printed). */
export interface CertificateAuthority {
  readonly certificatePem: string;
  readonly keyPem: string;
}

/** A server certificate and its private key, both PEM. */
export interface ServerCertificate {
  readonly certificatePem: string;
  readonly keyPem: string;
}

/** What a certificate says about itself, for messages, reports and tests. */
export interface CertificateFacts {
  /** Upper-case hex, as Node and OpenSSL print it. */
  readonly serial: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 fingerprint, colon-separated. */
  readonly fingerprint: string;
}

/**
 * Certificates start a minute in the past: a server whose clock is a little behind ours (or a check that runs in
 * the same second) must not see a certificate that is not valid yet.
 */
const clockSkewMs = 60_000;

/** 16 random bytes, the top bit clear: a positive serial (RFC 5280 asks for at most 20 octets, positive). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString("hex");
}

async function exportKey(key: SigningKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", key as webcrypto.CryptoKey), "PRIVATE KEY");
}

async function generateKeys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as unknown as KeyPair;
}

/** A self-signed CA that may sign server certificates (path length 0: no intermediates), valid `validMs` from now. */
export async function createCertificateAuthority(opts: { readonly commonName: string; readonly validMs: number; readonly now?: Date }): Promise<CertificateAuthority> {
  const now = (opts.now ?? new Date()).getTime();
  const keys = await generateKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${escapeDnValue(opts.commonName)}`,
    notBefore: new Date(now - clockSkewMs),
    notAfter: new Date(now + opts.validMs),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificatePem: certificate.toString("pem"), keyPem: await exportKey(keys.privateKey) };
}

export interface IssueOptions {
  /** The names it must carry: DNS and IP subject alternative names (the rendered `tls.serverNames`). */
  readonly names: ServerNames;
  /** Lifetime from `notBefore`. */
  readonly validMs: number;
  /** Defaults to a minute ago (clock skew). An earlier one with a short `validMs` makes an expired certificate. */
  readonly notBefore?: Date;
  /** Defaults to the first DNS name. */
  readonly commonName?: string;
}

/** A TLS server certificate for `names`, signed by `ca`, with a fresh EC P-256 key. */
export async function issueServerCertificate(ca: CertificateAuthority, opts: IssueOptions): Promise<ServerCertificate> {
  const caCertificate = new x509.X509Certificate(ca.certificatePem);
  const caKey = await webcrypto.subtle.importKey("pkcs8", x509.PemConverter.decodeFirst(ca.keyPem), algorithm, false, ["sign"]);
  const keys = await generateKeys();
  const notBefore = opts.notBefore ?? new Date(Date.now() - clockSkewMs);
  const altNames: x509.JsonGeneralName[] = [
    ...opts.names.dns.map((value) => ({ type: "dns" as const, value })),
    ...opts.names.ips.map((value) => ({ type: "ip" as const, value })),
  ];
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${escapeDnValue(opts.commonName ?? opts.names.dns[0] ?? opts.names.ips[0] ?? "server")}`,
    issuer: caCertificate.subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + opts.validMs),
    publicKey: keys.publicKey,
    signingKey: caKey as unknown as SigningKey,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(altNames),
      await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false),
    ],
  });
  return { certificatePem: certificate.toString("pem"), keyPem: await exportKey(keys.privateKey) };
}

/** RFC 4514: a common name with a comma or the like stays one value. */
function escapeDnValue(value: string): string {
  return value.replace(/[,+"\\<>;=]/g, (c) => `\\${c}`).replace(/^[ #]|[ ]$/g, (c) => `\\${c}`);
}

export function certificateFacts(certificate: string | X509Certificate): CertificateFacts {
  const c = typeof certificate === "string" ? new X509Certificate(certificate) : certificate;
  return {
    serial: c.serialNumber.toUpperCase(),
    subject: c.subject.replace(/\n/g, ", "),
    issuer: c.issuer.replace(/\n/g, ", "),
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    fingerprint: c.fingerprint256,
  };
}

/** "serial 1A2B…, valid until 2025-01-02T03:04:05Z": how messages name a certificate (never its key). */
export function describeCertificate(facts: CertificateFacts): string {
  return `serial ${facts.serial}, valid until ${facts.notAfter.toISOString()}`;
}

export interface CertificateCheck {
  /** The CA every client verifies with (PEM). */
  readonly caPem: string;
  /** The server certificate to check (PEM). */
  readonly certificatePem: string;
  /** Names every client connects with. */
  readonly names: ServerNames;
  /** Defaults to now. */
  readonly now?: Date;
}

/**
 * Why a client with sslmode=verify-full and this CA would refuse the certificate, one line each; empty when it would
 * not. Checked before a server is given a certificate, so that a bad one is refused whole instead of half installed
 * (PostgreSQL and PgBouncer load a certificate that does not chain to the clients' CA, or one already expired, without
 * a word, and every client is refused afterwards). Whether the key matches the certificate the servers check
 * themselves on load; LocalCluster reads back what they serve.
 */
export function certificateProblems(check: CertificateCheck): string[] {
  let ca: X509Certificate;
  let certificate: X509Certificate;
  try {
    ca = new X509Certificate(check.caPem);
  } catch (error) {
    return [`the CA certificate is not a PEM certificate (${(error as Error).message})`];
  }
  try {
    certificate = new X509Certificate(check.certificatePem);
  } catch (error) {
    return [`the server certificate is not a PEM certificate (${(error as Error).message})`];
  }
  const facts = certificateFacts(certificate);
  const caFacts = certificateFacts(ca);
  const now = check.now ?? new Date();
  const problems: string[] = [];
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) {
    problems.push(`the server certificate (${describeCertificate(facts)}) was not issued by the CA its clients trust: it names issuer "${facts.issuer}", the CA is "${caFacts.subject}" (serial ${caFacts.serial})`);
  }
  if (facts.notAfter.getTime() <= now.getTime()) {
    problems.push(`the server certificate (serial ${facts.serial}) expired at ${facts.notAfter.toISOString()}; every verifying client would refuse it`);
  } else if (facts.notBefore.getTime() > now.getTime()) {
    problems.push(`the server certificate (serial ${facts.serial}) is not valid before ${facts.notBefore.toISOString()}`);
  }
  if (facts.notAfter.getTime() > caFacts.notAfter.getTime()) {
    problems.push(`the server certificate (serial ${facts.serial}) is valid until ${facts.notAfter.toISOString()}, after its CA ends (${caFacts.notAfter.toISOString()})`);
  }
  const missing = [
    ...check.names.dns.filter((name) => certificate.checkHost(name, { subject: "never" }) === undefined),
    ...check.names.ips.filter((ip) => certificate.checkIP(ip) === undefined),
  ];
  if (missing.length > 0) {
    problems.push(`the server certificate (serial ${facts.serial}) does not carry ${missing.join(", ")}, which clients connect to (verify-full checks the name)`);
  }
  return problems;
}

/** Whether `keyPem` is the private key of `certificatePem`. */
export function keyMatches(certificatePem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certificatePem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/**
 * Why PostgreSQL would refuse the key file (src/backend/libpq/be-secure-common.c check_ssl_key_file): it must belong
 * to the server's user with no group or world access, or to root with at most group read. PgBouncer does not check,
 * but the same file serves both. `serverUid` is the uid PostgreSQL runs as.
 */
export function keyFileProblem(hostPath: string, serverUid: number): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(hostPath);
  } catch (error) {
    return `the key ${hostPath} cannot be read: ${(error as Error).message}`;
  }
  const mode = stat.mode & 0o777;
  const octal = mode.toString(8).padStart(4, "0");
  if (!stat.isFile()) return `the key ${hostPath} is not a regular file`;
  if (stat.uid === serverUid) {
    if ((mode & 0o077) !== 0) return `the key ${hostPath} has mode ${octal}; owned by the server's user (uid ${serverUid}) it must be 0600 or less: PostgreSQL refuses a key with group or world access`;
    return undefined;
  }
  if (stat.uid === 0) {
    if ((mode & 0o037) !== 0) return `the key ${hostPath} has mode ${octal}; owned by root it must be 0640 or less: PostgreSQL refuses anything wider`;
    return undefined;
  }
  return `the key ${hostPath} belongs to uid ${stat.uid}; it must belong to the server's user (uid ${serverUid}, mode 0600) or to root (mode 0640)`;
}

/** What a TLS handshake with a PostgreSQL-protocol server showed. */
export interface Handshake {
  readonly certificate: X509Certificate;
  /** The protocol agreed, e.g. "TLSv1.3". */
  readonly protocol: string;
  /** Whether the certificate verified against the `ca` given (always false without one). */
  readonly authorized: boolean;
}

/**
 * A TLS handshake with a PostgreSQL-protocol server (PostgreSQL or PgBouncer) on `port` (pgclient's
 * pgTlsHandshake: an SSLRequest, its 'S', the handshake with `options` — a CA to verify with, a protocol range — and a
 * clean close before any startup message). Without `options.ca` the certificate is read, not trusted, so an old,
 * foreign or expired one is seen as it is; a handshake the server refuses (an old protocol) rejects with its reason.
 */
export async function tlsHandshake(port: number, options: tls.ConnectionOptions = {}, host = "127.0.0.1", timeoutMs = 5_000): Promise<Handshake> {
  try {
    return await pgTlsHandshake(host, port, options, timeoutMs, (secured) => {
      const certificate = secured.getPeerX509Certificate();
      if (certificate === undefined) throw new Error(`the server on ${host}:${port} presented no certificate`);
      return { certificate, protocol: secured.getProtocol() ?? "", authorized: options.ca !== undefined && secured.authorized };
    });
  } catch (error) {
    throw new Error(`TLS handshake with ${host}:${port}: ${(error as Error).message}`);
  }
}

/** The certificate the server on `port` serves right now, read and not trusted (see `tlsHandshake`). */
export async function servedCertificate(port: number, host = "127.0.0.1"): Promise<X509Certificate> {
  return (await tlsHandshake(port, {}, host)).certificate;
}
