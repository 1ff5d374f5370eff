import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { StackCertificates } from "../stack-certificates";
import { type KubernetesNames, tlsSecretKeys } from "./layout";
import { certManagerCertificateSpec, kubernetesServerNames, tlsCommonName } from "./tls-spec";

export interface ServerTlsArgs {
  /**
   * The rendered stack: rendered.tls (the loopback names, lifetime and renewal window), spec.tls.certManagerIssuer,
   * spec.kubernetes.clusterDomain and the stack's name. Required; no default.
   */
  readonly rendered: Rendered;
  /** The stack's object names: the Secret's (names.tls) and the Services' the certificate is for. Required; no default. */
  readonly names: KubernetesNames;
  /** Namespace of the Secret (or Certificate) and of the Services. Required; no default. */
  readonly namespace: pulumi.Input<string>;
  /** Labels of the Secret, whoever writes it. Required; no default. */
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * The TLS Secret the database pod mounts (type kubernetes.io/tls: tls.crt, tls.key, ca.crt), named names.tls:
 * - by default written by the program from a CA and a server certificate it makes with @pulumi/tls
 *   (StackCertificates); a renewed certificate reaches the Secret with the `pulumi up` that renews it;
 * - with spec.tls.certManagerIssuer, written and renewed by cert-manager from a `Certificate`, which Pulumi waits on
 *   until it is Ready (the pod cannot start before the Secret exists). Nothing of @pulumi/tls is used then.
 */
export class ServerTls extends pulumi.ComponentResource {
  /** The Secret's name (fixed: the pod refers to it by name). */
  public readonly secretName: string;
  /** The CA certificate (PEM), not secret; undefined with cert-manager, whose issuer's CA is in the Secret's ca.crt. */
  public readonly caCertificate: pulumi.Output<string> | undefined;
  /** What the pod must be created after: the Secret, or the Certificate once Ready. */
  public readonly ready: pulumi.Resource;

  constructor(name: string, args: ServerTlsArgs, opts?: pulumi.ComponentResourceOptions) {
    // The Secret's data is a private key: super() records nothing.
    super("pgvector-stack:kubernetes:ServerTls", name, {}, opts);
    const { rendered, names, labels } = args;
    const { spec } = rendered;
    const namespace = pulumi.output(args.namespace);
    const serverNames = namespace.apply((ns) => kubernetesServerNames(names, ns, spec.kubernetes.clusterDomain, rendered.tls.serverNames));
    const metadata = { labels: { ...labels }, name: names.tls, namespace };
    this.secretName = names.tls;

    const issuer = spec.tls.certManagerIssuer;
    if (issuer !== null) {
      this.caCertificate = undefined;
      this.ready = new k8s.apiextensions.CustomResource(
        `${name}-certificate`,
        {
          apiVersion: "cert-manager.io/v1",
          kind: "Certificate",
          // Await the Ready condition (@pulumi/kubernetes ≥ 4.18): cert-manager has then written the Secret.
          metadata: { annotations: { "pulumi.com/waitFor": "condition=Ready" }, ...metadata },
          spec: serverNames.apply((n) =>
            certManagerCertificateSpec({
              secretName: names.tls,
              issuer,
              commonName: tlsCommonName(names),
              serverNames: n,
              lifetime: rendered.tls,
              secretLabels: labels,
            }),
          ),
        },
        { parent: this },
      );
    } else {
      const certificates = new StackCertificates(
        `${name}-certificates`,
        { stack: spec.stack, serverNames, commonName: tlsCommonName(names), lifetime: rendered.tls },
        { parent: this },
      );
      this.caCertificate = certificates.caCertificate;
      this.ready = new k8s.core.v1.Secret(
        `${name}-secret`,
        {
          metadata,
          type: "kubernetes.io/tls",
          stringData: {
            [tlsSecretKeys.ca]: certificates.caCertificate,
            [tlsSecretKeys.certificate]: certificates.certificate,
            [tlsSecretKeys.key]: certificates.privateKey,
          },
        },
        { parent: this },
      );
    }

    this.registerOutputs({ secretName: this.secretName, caCertificate: this.caCertificate });
  }
}
