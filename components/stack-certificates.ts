/**
 * The stack's own CA and the server certificate PostgreSQL and PgBouncer present, made inside the Pulumi program with
 * @pulumi/tls: the Docker target's, and the Kubernetes target's unless spec.tls.certManagerIssuer names an issuer.
 *
 * - ECDSA P-256 keys: what cert-manager's Certificate asks for too, accepted by PostgreSQL, PgBouncer (OpenSSL),
 *   lib/pq and node-postgres, and far cheaper in PgBouncer's single-threaded handshakes than RSA.
 * - The CA lives long (10 years) and is never renewed by the program: every client trusts it, so replacing it would
 *   break them all at once. The server certificate lives rendered.tls.certificateValidityMs and is replaced by the
 *   next `pulumi up` once it is within rendered.tls.renewBeforeMs of its end (@pulumi/tls plans the replacement when
 *   `readyForRenewal` turns true). Nothing renews it without a `pulumi up`: the canary's CertificateExpiresSoon alert
 *   is what says one is due.
 * - Private keys are secrets: @pulumi/tls marks them so (additionalSecretOutputs), and they are wrapped again here so
 *   the outputs stay secret whatever a provider or a mock reports.
 */
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import type { RenderedTls } from "../configs/rendered";
import type { ServerNames } from "../configs/tls";

const hourMs = 3_600_000;

/** The CA's lifetime: ten years, far beyond any server certificate it signs. */
export const caValidityHours = 10 * 365 * 24;

/** x509 usages of the CA: it signs certificates (and CRLs, which nothing here issues), nothing else. */
export const caAllowedUses = ["cert_signing", "crl_signing", "digital_signature"];

/** x509 usages of the server certificate, @pulumi/tls spelling (cert-manager's are the same words with spaces). */
export const serverAllowedUses = ["digital_signature", "key_encipherment", "server_auth"];

/**
 * rendered.tls in @pulumi/tls' whole hours: the lifetime rounded down, the renewal window rounded up (renew a little
 * early rather than late), and the window always at least an hour shorter than the lifetime — a window as long as the
 * lifetime would make every `pulumi up` replace the certificate.
 */
export function certificateHours(lifetime: Pick<RenderedTls, "certificateValidityMs" | "renewBeforeMs">): {
  readonly validityPeriodHours: number;
  readonly earlyRenewalHours: number;
} {
  const validityPeriodHours = Math.floor(lifetime.certificateValidityMs / hourMs);
  if (validityPeriodHours < 2) throw new Error(`a certificate validity of ${lifetime.certificateValidityMs} ms is under two hours; the spec allows 1d at least`);
  const earlyRenewalHours = Math.min(Math.ceil(lifetime.renewBeforeMs / hourMs), validityPeriodHours - 1);
  return { validityPeriodHours, earlyRenewalHours };
}

/** Two name lists as one: each name once, sorted (DNS and IP apart, as a certificate holds them). */
export function mergeServerNames(a: ServerNames, b: Partial<ServerNames>): ServerNames {
  const unique = (items: readonly string[]) => [...new Set(items)].sort();
  return { dns: unique([...a.dns, ...(b.dns ?? [])]), ips: unique([...a.ips, ...(b.ips ?? [])]) };
}

export interface StackCertificatesArgs {
  /** The stack's name, in the CA's subject (`pgvector-stack <stack> CA`), so two stacks' CAs are told apart. Required; no default. */
  readonly stack: string;
  /** The server certificate's names: the target's own (Services, network aliases) and rendered.tls.serverNames. Required; no default. */
  readonly serverNames: pulumi.Input<ServerNames>;
  /** The server certificate's subject common name; at most 64 characters (RFC 5280). Required; no default. */
  readonly commonName: string;
  /** How long the server certificate lives and how long before its end it is renewed: rendered.tls. Required; no default. */
  readonly lifetime: Pick<RenderedTls, "certificateValidityMs" | "renewBeforeMs">;
}

export class StackCertificates extends pulumi.ComponentResource {
  /** The CA certificate (PEM) every client verifies the servers with; not a secret. */
  public readonly caCertificate: pulumi.Output<string>;
  /** The server certificate (PEM) PostgreSQL and PgBouncer present. */
  public readonly certificate: pulumi.Output<string>;
  /** The server certificate's private key (PEM, SEC 1 "EC PRIVATE KEY"); secret. */
  public readonly privateKey: pulumi.Output<string>;

  constructor(name: string, args: StackCertificatesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pgvector-stack:tls:StackCertificates", name, {}, opts);
    if (args.commonName.length === 0 || args.commonName.length > 64) {
      throw new Error(`StackCertificates ${name}: commonName "${args.commonName}" must have 1 to 64 characters (RFC 5280 ub-common-name)`);
    }
    const hours = certificateHours(args.lifetime);
    const keyOpts = { parent: this, additionalSecretOutputs: ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"] };
    const names = pulumi.output(args.serverNames);

    const caKey = new tls.PrivateKey(`${name}-ca-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, keyOpts);
    const ca = new tls.SelfSignedCert(
      `${name}-ca`,
      {
        allowedUses: caAllowedUses,
        isCaCertificate: true,
        privateKeyPem: pulumi.secret(caKey.privateKeyPem),
        // Subject key id: the server certificate's authority key id then names this CA, which is how verifiers find it.
        setSubjectKeyId: true,
        subject: { commonName: `pgvector-stack ${args.stack} CA`, organization: "pgvector-stack" },
        validityPeriodHours: caValidityHours,
      },
      { parent: this },
    );

    // The key stays when the certificate is renewed (only the certificate is replaced); a new key needs
    // `pulumi up --replace` of this resource. cert-manager's Certificate rotates it on every renewal instead.
    const serverKey = new tls.PrivateKey(`${name}-server-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, keyOpts);
    const request = new tls.CertRequest(
      `${name}-server-request`,
      {
        dnsNames: names.apply((n) => [...n.dns]),
        ipAddresses: names.apply((n) => [...n.ips]),
        privateKeyPem: pulumi.secret(serverKey.privateKeyPem),
        subject: { commonName: args.commonName, organization: "pgvector-stack" },
      },
      { parent: this },
    );
    const server = new tls.LocallySignedCert(
      `${name}-server`,
      {
        allowedUses: serverAllowedUses,
        caCertPem: ca.certPem,
        caPrivateKeyPem: pulumi.secret(caKey.privateKeyPem),
        certRequestPem: request.certRequestPem,
        earlyRenewalHours: hours.earlyRenewalHours,
        setSubjectKeyId: true,
        validityPeriodHours: hours.validityPeriodHours,
      },
      { parent: this },
    );

    this.caCertificate = ca.certPem;
    this.certificate = server.certPem;
    this.privateKey = pulumi.secret(serverKey.privateKeyPem);
    this.registerOutputs({ caCertificate: this.caCertificate, certificate: this.certificate, privateKey: this.privateKey });
  }
}
