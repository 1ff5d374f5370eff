/**
 * TLS in the database pod and its clients on Kubernetes: which names the server certificate carries, the cert-manager
 * Certificate that may issue it, the volumes that bring the certificate to the servers and the CA to every client,
 * and the sidecar that reloads PostgreSQL and PgBouncer when the mounted certificate changes. Plain data in, plain data
 * out; no Pulumi calls.
 *
 * One Secret of type kubernetes.io/tls holds the certificate (`tls.crt`), its key (`tls.key`) and the CA (`ca.crt`),
 * cert-manager's layout, whoever writes it (the program, or cert-manager). It is mounted whole, without subPath (a
 * subPath mount never sees an update), into the two servers; every client gets `ca.crt` alone.
 */
import type * as k8s from "@pulumi/kubernetes";
import path from "node:path";
import type { ContainerResources } from "../../configs/kubernetes-resources";
import type { RenderedTls } from "../../configs/rendered";
import type { ServerNames } from "../../configs/tls";
import { mergeServerNames } from "../stack-certificates";
import { containerNames, type KubernetesNames, secretKeys, sortedRecord, tlsSecretKeys } from "./layout";

type Container = k8s.types.input.core.v1.Container;
type Volume = k8s.types.input.core.v1.Volume;

/** The pod volume holding the whole TLS Secret (the servers and the reloader) and the one holding only its CA. */
export const tlsVolumes = { server: "tls", ca: "tls-ca" } as const;

/**
 * Mode of the TLS Secret's files. The kubelet writes them owned by root, group fsGroup (the postgres gid): PostgreSQL
 * accepts a root-owned key file with no group write and no access for others ("0640 or less",
 * be-secure-common.c check_ssl_key_file_permissions), and reads it through its gid. 0440, the mode of every other
 * Secret here, is within that. Tried by hand with PostgreSQL 17.12 (Debian 13): a root:postgres 0440 key behind the
 * kubelet's `..data` symlinks starts the server and is re-read on reload.
 */
export const tlsFileMode = 0o440;

/** How often the reloader looks at the mounted files. A renewed Secret reaches the volume within about a minute. */
export const tlsReloadIntervalSeconds = 30;

/**
 * The names of the server certificate on Kubernetes: each Service (pooled, direct, headless) by its short name,
 * `<svc>.<ns>`, `<svc>.<ns>.svc` and its FQDN, the StatefulSet's pod through the headless Service, and
 * rendered.tls.serverNames (loopback, for the programs beside the servers and PgBouncer's own server leg).
 */
export function kubernetesServerNames(names: KubernetesNames, namespace: string, clusterDomain: string, renderedNames: ServerNames): ServerNames {
  const service = (svc: string) => [svc, `${svc}.${namespace}`, `${svc}.${namespace}.svc`, `${svc}.${namespace}.svc.${clusterDomain}`];
  // One replica: its stable name is <statefulset>-0.<headless service>.
  const pod = `${names.statefulSet}-0.${names.headless}.${namespace}.svc.${clusterDomain}`;
  return mergeServerNames(renderedNames, { dns: [...service(names.pooled), ...service(names.direct), ...service(names.headless), pod] });
}

/**
 * The certificate's subject common name: the pooled Service's short name, at most 49 characters (prefix ≤ 42), so
 * always within the 64 RFC 5280 allows, whatever the namespace. Verifiers go by the names above, never by this.
 */
export function tlsCommonName(names: KubernetesNames): string {
  return names.pooled;
}

/** Milliseconds as a Go duration ("2160h0m0s"), the form cert-manager's duration fields take and print. */
export function goDuration(ms: number): string {
  const total = Math.ceil(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  return `${hours}h${minutes}m${total % 60}s`;
}

export interface CertManagerCertificateInput {
  /** The Secret cert-manager writes (the TLS Secret the pod mounts). */
  readonly secretName: string;
  readonly issuer: { readonly name: string; readonly kind: "Issuer" | "ClusterIssuer" };
  readonly commonName: string;
  readonly serverNames: ServerNames;
  readonly lifetime: Pick<RenderedTls, "certificateValidityMs" | "renewBeforeMs">;
  /** Labels of the Secret cert-manager writes: the stack's own, as on every object. */
  readonly secretLabels: Readonly<Record<string, string>>;
}

/**
 * A cert-manager.io/v1 Certificate's spec: the server certificate for the names above, from the stack's issuer, its
 * key regenerated on every renewal (rotationPolicy Always), renewed rendered.tls.renewBeforeMs before its end.
 * The issuer must put `ca.crt` into the Secret (CA, self-signed and Vault issuers do; ACME issuers do not): every
 * client of the stack reads the CA from there.
 */
export function certManagerCertificateSpec(input: CertManagerCertificateInput): Record<string, unknown> {
  return {
    commonName: input.commonName,
    dnsNames: [...input.serverNames.dns],
    duration: goDuration(input.lifetime.certificateValidityMs),
    ipAddresses: [...input.serverNames.ips],
    issuerRef: { group: "cert-manager.io", kind: input.issuer.kind, name: input.issuer.name },
    privateKey: { algorithm: "ECDSA", rotationPolicy: "Always", size: 256 },
    renewBefore: goDuration(input.lifetime.renewBeforeMs),
    secretName: input.secretName,
    secretTemplate: { labels: sortedRecord({ ...input.secretLabels }) },
    usages: ["digital signature", "key encipherment", "server auth"],
  };
}

/** The whole TLS Secret as a volume: the servers' certificate, key and CA. */
export function serverTlsVolume(secretName: string): Volume {
  return { name: tlsVolumes.server, secret: { defaultMode: tlsFileMode, secretName } };
}

/** The CA alone, as a volume a client mounts at the directory of rendered.tls.files.ca. */
export function caVolume(secretName: string, caPath: string): Volume {
  const file = path.posix.basename(caPath);
  return { name: tlsVolumes.ca, secret: { defaultMode: tlsFileMode, items: [{ key: tlsSecretKeys.ca, path: file }], secretName } };
}

/** Where a client mounts caVolume. */
export function caVolumeMount(caPath: string): { mountPath: string; name: string; readOnly: true } {
  return { mountPath: path.posix.dirname(caPath), name: tlsVolumes.ca, readOnly: true };
}

/**
 * The CA as an item of a projected volume mounted at `mountDir`, when the CA's path is below that directory; null when
 * it is not. A second volume cannot be mounted inside a ConfigMap's (read-only, no mount point can be made there), so
 * a client whose files already live above the CA's directory (the exporter's queries, the hook's plan at
 * /etc/pgstack) gets the CA projected into that same volume instead.
 */
export function caProjection(mountDir: string, caPath: string, secretName: string): k8s.types.input.core.v1.VolumeProjection | null {
  const relative = path.posix.relative(mountDir, caPath);
  if (relative === "" || relative.startsWith("..") || path.posix.isAbsolute(relative)) return null;
  return { secret: { items: [{ key: tlsSecretKeys.ca, path: relative }], name: secretName } };
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface TlsReloadInput {
  /** The directory the TLS Secret is mounted at (tlsDirectory of the placement). */
  readonly tlsDir: string;
  /** PostgreSQL's Unix socket directory and port (placement). */
  readonly socketDir: string;
  readonly postgresPort: number;
  /** PgBouncer's port on the pod's loopback (placement). */
  readonly pgbouncerPort: number;
  /** The superuser, on the socket by peer (rendered.roles.superuser). */
  readonly superuser: string;
  /** PgBouncer's admin user, for RELOAD (rendered.roles.pgbouncerAdmin). */
  readonly pgbouncerAdmin: string;
  /** Where the reloader sees the bootstrap Secret's script (roles.sql and the verifiers). */
  readonly bootstrapFile: string;
  /** Where the reloader sees PgBouncer's auth_file (the userlist Secret). */
  readonly userlistFile: string;
  /** Seconds between two looks at the files. */
  readonly intervalSeconds: number;
}

/**
 * The reloader's program: POSIX sh (dash in the postgres image), no file written (the root filesystem is read-only).
 * Every interval it hashes the mounted files: the TLS Secret's three, the bootstrap Secret's script (roles.sql and
 * every role's verifier) and PgBouncer's auth_file. Whatever changed since its last successful run it does again, and
 * records the hash only when that succeeded (a failure is retried next round, for that step alone). It starts with no
 * hash, so it does everything once at start: that covers a Secret changed between a server's start and its own.
 *
 * - PostgreSQL: `SELECT pg_reload_conf()` when the TLS files changed, and the bootstrap script (`psql -f`) when it
 *   changed — a password rotated by `pulumi up` is a new verifier there — both as the superuser on the Unix socket,
 *   which pg_hba.conf admits by peer for the OS user postgres (uid 999, this container's): no password, no network.
 *   PostgreSQL re-reads ssl_cert_file and ssl_key_file on reload; a pair that does not match is refused and the old
 *   one kept (logged). The script is idempotent (CREATE … IF NOT EXISTS, ALTER ROLE).
 * - PgBouncer: `RELOAD` on its admin console when its certificate files or its auth_file changed, and only once the
 *   bootstrap script as it is now has been applied: PgBouncer must never hold a verifier PostgreSQL lacks (its SCRAM
 *   pass-through would then fail at PostgreSQL). Over TCP on loopback as its admin user (a PgBouncer user, not a
 *   database role; password from the credentials Secret). PgBouncer has no Unix socket here, and a signal would need
 *   shareProcessNamespace, which would make /proc/1 the pause container for node_exporter and every container's
 *   environment readable to the others. sslmode=require, not verify-full: this connection must work exactly when the
 *   certificate PgBouncer still serves has expired or comes from a CA the mounted ca.crt no longer holds (that is
 *   when a reload is most needed); it never leaves the pod's network namespace, and SCRAM does not expose the password
 *   to whoever answers. sslcertmode=disable (libpq ≥ 16): no client certificate is looked for.
 *
 * tests/real/reloader.test.ts runs this script with Debian 13's sh and psql against a real perf cluster (PostgreSQL
 * 17, PgBouncer 1.24): a rotated password's new verifier applied and PgBouncer reloaded, the new password in, the old
 * one refused; a renewed certificate served by both.
 */
export function tlsReloadScript(input: TlsReloadInput): string {
  const file = (key: string) => shellQuote(path.posix.join(input.tlsDir, key));
  const files = [file(tlsSecretKeys.certificate), file(tlsSecretKeys.key), file(tlsSecretKeys.ca)];
  const bootstrap = shellQuote(input.bootstrapFile);
  const userlist = shellQuote(input.userlistFile);
  const onSocket = `psql -X -q -w -v ON_ERROR_STOP=1 -h ${shellQuote(input.socketDir)} -p ${input.postgresPort} -U ${shellQuote(input.superuser)} -d postgres`;
  const postgres = `${onSocket} -c 'SELECT pg_reload_conf()'`;
  const roles = `${onSocket} -f ${bootstrap}`;
  const pgbouncerConninfo = `host=127.0.0.1 port=${input.pgbouncerPort} dbname=pgbouncer user=${input.pgbouncerAdmin} sslmode=require sslcertmode=disable connect_timeout=10 application_name=pgstack-tls-reloader`;
  const pgbouncer = `psql -X -q -w ${shellQuote(pgbouncerConninfo)} -c RELOAD`;
  const reload = (what: string, failed: string, hash: string, loaded: string, command: string, indent = "    ") =>
    [
      `if [ "$${hash}" != "$${loaded}" ]; then`,
      `  if ${command} >/dev/null; then`,
      `    echo "tls-reloader: ${what} (sha256 \${${hash}%% *})"`,
      `    ${loaded}=$${hash}`,
      "  else",
      `    echo "tls-reloader: ${failed}; trying again in ${input.intervalSeconds}s" >&2`,
      "  fi",
      "fi",
    ].map((line) => `${indent}${line}`);
  return [
    // PID 1 of its container: without a handler SIGTERM would be ignored until the grace period ends.
    "trap 'exit 0' TERM INT",
    'postgres_loaded=""',
    'roles_loaded=""',
    'pgbouncer_loaded=""',
    "while :; do",
    `  if [ -r ${files[0]} ] && [ -r ${files[1]} ] && [ -r ${files[2]} ] && [ -r ${bootstrap} ] && [ -r ${userlist} ]; then`,
    `    tls=$(cat ${files.join(" ")} | sha256sum)`,
    `    roles=$(cat ${bootstrap} | sha256sum)`,
    `    users="$tls $(cat ${userlist} | sha256sum)"`,
    ...reload("PostgreSQL reloaded its certificate files", "PostgreSQL did not reload", "tls", "postgres_loaded", postgres),
    // Roles first, PgBouncer after: PgBouncer must never hold a verifier PostgreSQL does not have yet.
    ...reload("roles and passwords applied to PostgreSQL", "the roles script failed on PostgreSQL", "roles", "roles_loaded", roles),
    `    if [ "$roles_loaded" = "$roles" ]; then`,
    ...reload("PgBouncer reloaded its certificate files and auth_file", "PgBouncer did not reload", "users", "pgbouncer_loaded", pgbouncer, "      "),
    "    fi",
    "  else",
    `    echo "tls-reloader: the certificate, role and auth files are not all readable yet" >&2`,
    "  fi",
    // In the background, so that the trap runs at once rather than after the sleep.
    `  sleep ${input.intervalSeconds} & wait $!`,
    "done",
    "",
  ].join("\n");
}

export interface TlsReloaderContainerInput {
  readonly reload: TlsReloadInput;
  /** The postgres image: it brings sh, sha256sum and psql. */
  readonly image: string;
  /** The Secret holding PgBouncer's admin password (the credentials Secret). */
  readonly credentialsSecret: string;
  /** The pod's volumes holding the bootstrap script and PgBouncer's auth_file (mounted at the reload input's dirs). */
  readonly bootstrapVolume: string;
  readonly userlistVolume: string;
  readonly resources: ContainerResources;
  readonly securityContext: k8s.types.input.core.v1.SecurityContext;
}

/**
 * The reloader as a native sidecar (restartPolicy Always): it runs beside the servers for the pod's whole life and is
 * restarted if its loop ever exits. It mounts the TLS Secret and PostgreSQL's socket directory read-only (connecting
 * to a socket needs no write access to its mount), nothing else, and gets the superuser's password for PgBouncer's
 * console only.
 */
export function tlsReloaderContainer(input: TlsReloaderContainerInput): Container {
  return {
    name: containerNames.tlsReloader,
    image: input.image,
    // Not the image's entrypoint (it would initialise a database): the loop alone.
    command: ["sh", "-c", tlsReloadScript(input.reload)],
    env: [{ name: "PGPASSWORD", valueFrom: { secretKeyRef: { key: secretKeys.pgbouncerAdminPassword, name: input.credentialsSecret } } }],
    resources: { limits: sortedRecord(input.resources.limits), requests: sortedRecord(input.resources.requests) },
    restartPolicy: "Always",
    securityContext: input.securityContext,
    volumeMounts: [
      { mountPath: input.reload.tlsDir, name: tlsVolumes.server, readOnly: true },
      { mountPath: input.reload.socketDir, name: "run", readOnly: true },
      { mountPath: path.posix.dirname(input.reload.bootstrapFile), name: input.bootstrapVolume, readOnly: true },
      { mountPath: path.posix.dirname(input.reload.userlistFile), name: input.userlistVolume, readOnly: true },
    ],
  };
}
