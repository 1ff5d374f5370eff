/**
 * The docker target: PostgreSQL 17 + pgvector with PgBouncer, the metric sources (postgres_exporter,
 * pgbouncer_exporter, node_exporter, mtail, the canary) and Prometheus on one Docker host, deployed from the same
 * Rendered files as every other target, and the post-deploy hook run to completion.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as docker from "@pulumi/docker";
import { pgbouncerUserlist } from "../../configs/pgbouncer";
import type { Rendered, RenderedMemory } from "../../configs/rendered";
import { bootstrapSql, passwordKey, roleKinds, type PasswordArgs, type RoleKind } from "../../configs/roles";
import {
  type Endpoints,
  type HugePagesDecision,
  connectionUrl,
  defaultHostCaPath,
  dockerNames,
  dockerServerNames,
  endpoints,
  hugePagesDecision,
  loopbackAddresses,
  networkAliases,
  sortedLabels,
  stackProblems,
  tlsCommonName,
} from "./layout";
import { DockerCanary } from "./canary";
import { DockerMonitoring } from "./monitoring";
import { DockerPgBouncer } from "./pgbouncer";
import { DockerPostDeployHook, type HookReport } from "./postdeploy-hook";
import { DockerNamespace } from "./namespace";
import { DockerPostgres } from "./postgres";
import { DockerRoles } from "./roles";
import { roleVerifier } from "../../configs/scram";
import { verifyFullQuery } from "../../configs/tls";
import { StackCertificates } from "../stack-certificates";
import { StackImages } from "../stack-images";

/** Passwords: one per role kind (configs/roles.ts, e.g. `appPassword`, `readOnlyPassword`), each generated when not given. */
export interface DockerVectorStackArgs extends PasswordArgs<pulumi.Input<string>> {
  /** The rendered stack (configs/render.ts) of a stack whose target is docker. Required; no default. */
  readonly rendered: Rendered;
  /** The bundled pgstack CLI (one CommonJS file) the post-deploy hook and the canary run. Required; no default. */
  readonly hookBundle: string;
  /** Prefix of every Docker object name (containers, network, volume). Defaults to `pgstack-<stack>`. */
  readonly namePrefix?: string;
  /**
   * Where clients on the Docker host keep the CA (`pulumi stack output caCertificate > <path>`): the sslrootcert of
   * the connection strings this stack outputs. A relative path is opened from the client's working directory.
   * Defaults to `pgstack-<stack>-ca.crt`.
   */
  readonly hostCaPath?: string;
}

/** The memory plan as deployed: the rendered plan plus the container's /dev/shm. */
export interface DockerMemoryPlan extends RenderedMemory {
  readonly shmSizeBytes: number;
}

export class DockerVectorStack extends pulumi.ComponentResource {
  /** host:port on the Docker host: pooled (PgBouncer), direct (PostgreSQL), Prometheus. */
  public readonly endpoints: Endpoints;
  /** The application's URL through PgBouncer (secret), verifying the server against the CA at hostCaPath. */
  public readonly connectionString: pulumi.Output<string>;
  /** The application role's URL straight to PostgreSQL (secret), verifying likewise. */
  public readonly directConnectionString: pulumi.Output<string>;
  /** The read-only role's URL through PgBouncer (secret). */
  public readonly readOnlyConnectionString: pulumi.Output<string>;
  /** The owner's URL straight to PostgreSQL, for migrations (secret). The superuser has none: socket only. */
  public readonly ownerConnectionString: pulumi.Output<string>;
  /** The stack's CA certificate (PEM, not secret): save it where hostCaPath says. */
  public readonly caCertificate: pulumi.Output<string>;
  public readonly memoryPlan: DockerMemoryPlan;
  /** huge_pages as deployed ("on" or "try", or "off") and why. */
  public readonly hugePages: HugePagesDecision;
  /** The post-deploy hook's exit code and log. */
  public readonly hookReport: pulumi.Output<HookReport>;

  constructor(name: string, args: DockerVectorStackArgs, opts?: pulumi.ComponentResourceOptions) {
    const problems = stackProblems(args.rendered);
    if (problems.length > 0) throw new Error(`DockerVectorStack ${name}: ${problems.join("; ")}`);
    // libpq reads an empty sslrootcert as "the default file" (~/.postgresql/root.crt), not as this stack's CA.
    if (args.hostCaPath !== undefined && args.hostCaPath.trim() === "") {
      throw new Error(`DockerVectorStack ${name}: hostCaPath is empty; give the file clients on the host keep the CA in, or leave it out for pgstack-<stack>-ca.crt`);
    }
    // Args carry passwords: what super() receives is recorded in state, so it gets nothing.
    super("pgvector-stack:docker:DockerVectorStack", name, {}, opts);
    const { rendered, hookBundle } = args;
    const { spec, roles, placement } = rendered;
    const names = dockerNames(args.namePrefix ?? `pgstack-${spec.stack}`);
    const { database } = spec.postgres;
    const appUser = roles.app;

    // Generated passwords are letters and digits: they go into URLs and env, where nothing then needs escaping.
    const password = (role: string, given: pulumi.Input<string> | undefined): pulumi.Output<string> =>
      given !== undefined
        ? pulumi.secret(given)
        : pulumi.secret(new random.RandomPassword(`${name}-${role}-password`, { length: 32, special: false }, { parent: this }).result);
    const passwords = Object.fromEntries(roleKinds.map((kind) => [kind, password(kind, args[passwordKey(kind)])])) as Record<RoleKind, pulumi.Output<string>>;
    const appPassword = passwords.app;

    // Verifiers, never passwords, go into uploads. Salts are derived (see scram-salt.ts), so the same password gives
    // the same verifier on every run and nothing is replaced until a password changes.
    const verifiers = Object.fromEntries(
      roleKinds.map((kind) => [roles.plan.names[kind], passwords[kind].apply((p) => roleVerifier(spec.stack, roles.plan.names[kind], p))]),
    ) as Record<string, pulumi.Output<string>>;
    const superuserVerifier = verifiers[roles.superuser];
    // PgBouncer's auth_file lists the users Rendered names (pooled roles, stats, admin), each with the very verifier
    // PostgreSQL holds, which SCRAM pass-through needs.
    const userlistVerifiers: Readonly<Record<string, pulumi.Output<string>>> = verifiers;
    const userlist = pulumi
      .all(
        roles.pgbouncerUsers.map((user) => {
          const v = userlistVerifiers[user];
          if (v === undefined) throw new Error(`DockerVectorStack ${name}: PgBouncer's auth_file needs user "${user}", whose password this stack does not hold`);
          return v.apply((verifier) => ({ user, verifier }));
        }),
      )
      .apply(pgbouncerUserlist);

    // The stack's CA and the server certificate PostgreSQL and PgBouncer present, for every name a client uses: the
    // network aliases (the hook), loopback (everything in the database's namespace), the published address (the host).
    const certificates = new StackCertificates(
      `${name}-tls`,
      { stack: spec.stack, serverNames: dockerServerNames(rendered), commonName: tlsCommonName, lifetime: rendered.tls },
      { parent: this },
    );
    const serverTls = { certificate: certificates.certificate, privateKey: certificates.privateKey, caCertificate: certificates.caCertificate };
    // Inside the containers every URL verifies against the uploaded CA; on the host, against the CA where the user keeps it.
    const inContainers = rendered.tls.clientQuery;
    const onHost = verifyFullQuery(args.hostCaPath ?? defaultHostCaPath(spec.stack));

    const images = new StackImages(`${name}-images`, { spec }, { parent: this }).references;

    const network = new docker.Network(
      `${name}-network`,
      { name: names.network, labels: sortedLabels({ "pgvector-stack.stack": spec.stack }) },
      { parent: this },
    );

    // The roles and their passwords, applied by the roles container (roles.ts) on every deploy that changes them.
    const bootstrap = pulumi.all(verifiers).apply((v) => bootstrapSql(rendered.files["roles.sql"], roles.plan, v));
    // The namespace every long-running container joins, held by a container that never restarts on its own.
    const namespace = new DockerNamespace(`${name}-namespace`, { rendered, names, networkName: network.name, image: images.postgres }, { parent: this });
    const namespaceOwnerId = namespace.container.id;

    const postgres = new DockerPostgres(
      `${name}-postgres`,
      {
        rendered,
        names,
        image: images.postgres,
        namespaceOwnerId,
        superuserVerifier,
        tls: serverTls,
      },
      { parent: this },
    );

    const rolesJob = new DockerRoles(
      `${name}-roles`,
      { rendered, names, image: images.postgres, socketVolumeName: postgres.socketVolume.name, bootstrapSql: bootstrap, startAfter: [postgres.container] },
      { parent: this },
    );

    const pgbouncer = new DockerPgBouncer(
      `${name}-pgbouncer`,
      {
        rendered,
        names,
        image: images.pgbouncer,
        namespaceOwnerId,
        // The roles and passwords applied first, and successfully: its auth_file holds the verifiers just set.
        startAfter: [rolesJob.succeeded],
        userlist,
        tls: serverTls,
      },
      { parent: this },
    );

    new DockerMonitoring(
      `${name}-monitoring`,
      {
        rendered,
        names,
        images,
        namespaceOwnerId,
        dataVolumeName: postgres.dataVolume.name,
        pgbouncerLogVolumeName: pgbouncer.logVolume.name,
        monitorPassword: passwords.monitor,
        statsPassword: passwords.stats,
        caCertificate: certificates.caCertificate,
        startAfter: [pgbouncer.container],
      },
      { parent: this },
    );

    // The canary's own role, which reaches nothing of the application's; on loopback, from inside the database's namespace.
    const canaryAt = loopbackAddresses(placement);
    new DockerCanary(
      `${name}-canary`,
      {
        rendered,
        names,
        image: images.node,
        namespaceOwnerId,
        hookBundle,
        pooledUrl: passwords.canary.apply((p) => connectionUrl(roles.canary, p, canaryAt.pooled, database, inContainers)),
        directUrl: passwords.canary.apply((p) => connectionUrl(roles.canary, p, canaryAt.direct, database, inContainers)),
        caCertificate: certificates.caCertificate,
        startAfter: [pgbouncer.container],
      },
      { parent: this },
    );

    const hook = new DockerPostDeployHook(
      `${name}-hook`,
      {
        rendered,
        names,
        image: images.node,
        networkName: network.name,
        hookBundle,
        // The owner builds indexes and creates tables; the benchmark goes through PgBouncer as the application does.
        directUrl: passwords.owner.apply((p) => connectionUrl(roles.owner, p, `${networkAliases.postgres}:${placement.ports.postgres}`, database, inContainers)),
        pooledUrl: appPassword.apply((p) => connectionUrl(appUser, p, `${networkAliases.pgbouncer}:${placement.ports.pgbouncer}`, database, inContainers)),
        caCertificate: certificates.caCertificate,
        startAfter: [postgres.container, pgbouncer.container],
      },
      { parent: this },
    );

    this.endpoints = endpoints(spec.docker);
    this.connectionString = appPassword.apply((p) => connectionUrl(appUser, p, this.endpoints.pooled, database, onHost));
    this.directConnectionString = appPassword.apply((p) => connectionUrl(appUser, p, this.endpoints.direct, database, onHost));
    this.readOnlyConnectionString = passwords.readOnly.apply((p) => connectionUrl(roles.readOnly, p, this.endpoints.pooled, database, onHost));
    this.ownerConnectionString = passwords.owner.apply((p) => connectionUrl(roles.owner, p, this.endpoints.direct, database, onHost));
    this.caCertificate = certificates.caCertificate;
    this.memoryPlan = { ...rendered.memory, shmSizeBytes: postgres.shmSizeMiB * 1024 * 1024 };
    this.hugePages = hugePagesDecision(rendered);
    this.hookReport = hook.report;

    this.registerOutputs({
      endpoints: this.endpoints,
      connectionString: this.connectionString,
      directConnectionString: this.directConnectionString,
      readOnlyConnectionString: this.readOnlyConnectionString,
      ownerConnectionString: this.ownerConnectionString,
      caCertificate: this.caCertificate,
      memoryPlan: this.memoryPlan,
      hugePages: this.hugePages,
      hookReport: this.hookReport,
    });
  }
}
