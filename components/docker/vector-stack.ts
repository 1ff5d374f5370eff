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
import { bootstrapSql } from "../../configs/roles";
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
  superuserPasswordSql,
  tlsCommonName,
} from "./layout";
import { DockerCanary } from "./canary";
import { DockerMonitoring } from "./monitoring";
import { DockerPgBouncer } from "./pgbouncer";
import { DockerPostDeployHook, type HookReport } from "./postdeploy-hook";
import { DockerPostgres } from "./postgres";
import { roleVerifier } from "../../configs/scram";
import { verifyFullQuery } from "../../configs/tls";
import { StackCertificates } from "../stack-certificates";

export interface DockerVectorStackArgs {
  /** The rendered stack (configs/render.ts) of a stack whose target is docker. Required; no default. */
  readonly rendered: Rendered;
  /** The bundled pgstack CLI (one CommonJS file) the post-deploy hook and the canary run. Required; no default. */
  readonly hookBundle: string;
  /** Password of the superuser (rendered.roles.superuser). Defaults to a generated 32-character password. */
  readonly superuserPassword?: pulumi.Input<string>;
  /** Password of the application role (rendered.roles.app). Defaults to a generated 32-character password. */
  readonly appPassword?: pulumi.Input<string>;
  /** Password of the monitoring role (rendered.roles.monitor, postgres_exporter). Defaults to a generated 32-character password. */
  readonly monitorPassword?: pulumi.Input<string>;
  /** Password of PgBouncer's stats user (rendered.roles.stats, pgbouncer_exporter). Defaults to a generated 32-character password. */
  readonly statsPassword?: pulumi.Input<string>;
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
  /** The application's URL straight to PostgreSQL, for migrations and index builds (secret), verifying likewise. */
  public readonly directConnectionString: pulumi.Output<string>;
  /** The superuser's URL straight to PostgreSQL (secret), verifying likewise. */
  public readonly superuserConnectionString: pulumi.Output<string>;
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
    const superuserPassword = password("superuser", args.superuserPassword);
    const appPassword = password("app", args.appPassword);
    const monitorPassword = password("monitor", args.monitorPassword);
    const statsPassword = password("stats", args.statsPassword);

    // Verifiers, never passwords, go into uploads. Salts are derived (see scram-salt.ts), so the same password gives
    // the same verifier on every run and nothing is replaced until a password changes.
    const verifier = (role: string, pw: pulumi.Output<string>): pulumi.Output<string> =>
      pw.apply((p) => roleVerifier(spec.stack, role, p));
    const superuserVerifier = verifier(roles.superuser, superuserPassword);
    const appVerifier = verifier(appUser, appPassword);
    const monitorVerifier = verifier(roles.monitor, monitorPassword);
    const statsVerifier = verifier(roles.stats, statsPassword);
    // PgBouncer's auth_file lists the users Rendered names (application, stats, admin), each with the very verifier
    // PostgreSQL holds, which SCRAM pass-through needs.
    const userlistVerifiers: Readonly<Record<string, pulumi.Output<string>>> = {
      [appUser]: appVerifier,
      [roles.stats]: statsVerifier,
      [roles.superuser]: superuserVerifier,
    };
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

    const network = new docker.Network(
      `${name}-network`,
      { name: names.network, labels: sortedLabels({ "pgvector-stack.stack": spec.stack }) },
      { parent: this },
    );

    // The bootstrap runs only when the entrypoint initialises an empty data volume. It is idempotent and stays in
    // the container, so after a password change (which replaces the container with the new verifiers uploaded):
    // `docker exec -u postgres <prefix>-postgres psql -v ON_ERROR_STOP=1 -f /docker-entrypoint-initdb.d/10-pgstack-roles.sql`.
    // The superuser's line repeats what initdb set, so that command covers a new superuser password too.
    const bootstrap = pulumi
      .all([appVerifier, monitorVerifier, superuserVerifier])
      .apply(([app, monitor, su]) => `${bootstrapSql(database, appUser, { app, monitor })}${superuserPasswordSql(roles.superuser, su)}`);
    const postgres = new DockerPostgres(
      `${name}-postgres`,
      {
        rendered,
        names,
        networkName: network.name,
        superuserVerifier,
        bootstrapSql: bootstrap,
        tls: serverTls,
      },
      { parent: this },
    );

    const pgbouncer = new DockerPgBouncer(
      `${name}-pgbouncer`,
      {
        rendered,
        names,
        namespaceOwnerId: postgres.container.id,
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
        namespaceOwnerId: postgres.container.id,
        dataVolumeName: postgres.dataVolume.name,
        monitorPassword,
        statsPassword,
        caCertificate: certificates.caCertificate,
        startAfter: [pgbouncer.container],
      },
      { parent: this },
    );

    // The application's role, as an application connects; on loopback, from inside the database's namespace.
    const canaryAt = loopbackAddresses(placement);
    new DockerCanary(
      `${name}-canary`,
      {
        rendered,
        names,
        namespaceOwnerId: postgres.container.id,
        hookBundle,
        pooledUrl: appPassword.apply((p) => connectionUrl(appUser, p, canaryAt.pooled, database, inContainers)),
        directUrl: appPassword.apply((p) => connectionUrl(appUser, p, canaryAt.direct, database, inContainers)),
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
        networkName: network.name,
        hookBundle,
        directUrl: appPassword.apply((p) => connectionUrl(appUser, p, `${networkAliases.postgres}:${placement.ports.postgres}`, database, inContainers)),
        pooledUrl: appPassword.apply((p) => connectionUrl(appUser, p, `${networkAliases.pgbouncer}:${placement.ports.pgbouncer}`, database, inContainers)),
        caCertificate: certificates.caCertificate,
        startAfter: [postgres.container, pgbouncer.container],
      },
      { parent: this },
    );

    this.endpoints = endpoints(spec.docker);
    this.connectionString = appPassword.apply((p) => connectionUrl(appUser, p, this.endpoints.pooled, database, onHost));
    this.directConnectionString = appPassword.apply((p) => connectionUrl(appUser, p, this.endpoints.direct, database, onHost));
    this.superuserConnectionString = superuserPassword.apply((p) => connectionUrl(roles.superuser, p, this.endpoints.direct, database, onHost));
    this.caCertificate = certificates.caCertificate;
    this.memoryPlan = { ...rendered.memory, shmSizeBytes: postgres.shmSizeMiB * 1024 * 1024 };
    this.hugePages = hugePagesDecision(rendered);
    this.hookReport = hook.report;

    this.registerOutputs({
      endpoints: this.endpoints,
      connectionString: this.connectionString,
      directConnectionString: this.directConnectionString,
      superuserConnectionString: this.superuserConnectionString,
      caCertificate: this.caCertificate,
      memoryPlan: this.memoryPlan,
      hugePages: this.hugePages,
      hookReport: this.hookReport,
    });
  }
}
