/**
 * The PostgreSQL 17 + pgvector container and its data volume, in the stack's network namespace (namespace.ts), which
 * publishes the ports and answers on the stack network.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import {
  containerHardening,
  type DockerNames,
  fileVariable,
  paths,
  postgresCommand,
  postgresEntrypoint,
  postgresHealthcheck,
  secretFile,
  sha256,
  shmSizeMiB,
  sortedLabels,
  superuserPasswordVariable,
} from "./layout";

export interface DockerPostgresArgs {
  /** The rendered stack: postgresql.conf, pg_hba.conf, memory plan, placement, roles, image, ports, the TLS files' paths. Required; no default. */
  readonly rendered: Rendered;
  /** Docker object names of this stack (see `dockerNames`). Required; no default. */
  readonly names: DockerNames;
  /** The namespace holder's container id (namespace.ts), whose network namespace it joins. Required; no default. */
  readonly namespaceOwnerId: pulumi.Input<string>;
  /** The postgres image (components/stack-images.ts). Required; no default. */
  readonly image: pulumi.Input<string>;
  /** SCRAM verifier of the superuser's (rendered.roles.superuser) password, which initdb stores as it is. Required; no default. */
  readonly superuserVerifier: pulumi.Input<string>;
  /** The server certificate, its private key (secret) and the CA, PEM, uploaded where rendered.tls.files says. Required; no default. */
  readonly tls: ServerTlsPems;
}

/** What a server container presents (certificate and key) and trusts (the CA), PEM. */
export interface ServerTlsPems {
  readonly certificate: pulumi.Input<string>;
  /** Secret. */
  readonly privateKey: pulumi.Input<string>;
  readonly caCertificate: pulumi.Input<string>;
}

export class DockerPostgres extends pulumi.ComponentResource {
  /** The database container: healthy once PostgreSQL accepts TCP connections, which the sidecars wait for. */
  public readonly container: docker.Container;
  public readonly dataVolume: docker.Volume;
  /** PostgreSQL's socket directory, which the roles container (roles.ts) reaches it through. */
  public readonly socketVolume: docker.Volume;
  /** /dev/shm of the container, MiB. */
  public readonly shmSizeMiB: number;

  constructor(name: string, args: DockerPostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    // Args carry verifiers derived from secrets: keep them out of the component's recorded inputs.
    super("pgvector-stack:docker:DockerPostgres", name, {}, opts);
    const { rendered, names } = args;
    const files = rendered.files;
    const dataMount = rendered.placement.dataVolumeMount;
    // stackProblems refuses a placement without one before any resource exists.
    if (dataMount === null) throw new Error(`DockerPostgres ${name}: rendered.placement.dataVolumeMount is null`);
    this.shmSizeMiB = shmSizeMiB(rendered.memory);

    // Retained: `pulumi destroy` and a replaced container leave the data where it is. Remove it with
    // `docker volume rm` when the data really should go.
    this.dataVolume = new docker.Volume(
      `${name}-data`,
      { name: names.dataVolume, labels: sortedLabels({ "pgvector-stack.stack": rendered.spec.stack, "pgvector-stack.role": "data" }) },
      { parent: this, retainOnDelete: true },
    );

    // Holds nothing but the socket: not retained. A new volume takes the image's directory (postgres's, 3775).
    this.socketVolume = new docker.Volume(
      `${name}-socket`,
      { name: names.socketVolume, labels: sortedLabels({ "pgvector-stack.stack": rendered.spec.stack, "pgvector-stack.role": "socket" }) },
      { parent: this },
    );

    this.container = new docker.Container(
      `${name}-container`,
      {
        name: names.postgres,
        image: args.image,
        // Makes the uploaded key the postgres user's, mode 0600, then runs the image's entrypoint (layout.ts).
        entrypoints: postgresEntrypoint(rendered.tls.files.key),
        command: [...postgresCommand],
        // Not the password: its SCRAM verifier. The entrypoint hands POSTGRES_PASSWORD to initdb, whose
        // `ALTER USER postgres PASSWORD '…'` stores a verifier as it is (as for any role); after that only the roles job
        // (roles.ts) sets passwords, on the socket as the OS user postgres, which the rendered pg_hba.conf admits by
        // peer, so no password is ever sent (configs/pg-hba.ts renders that line). Used on an empty volume only, yet an
        // upload: a changed superuser password also replaces (restarts) this container. A verifier cannot
        // log in, but it lets its holder pose as the server and try passwords offline: it goes in a file the
        // entrypoint reads (POSTGRES_PASSWORD_FILE, as root before dropping to postgres), not in the env `docker inspect` prints.
        envs: [`${fileVariable(superuserPasswordVariable)}=${secretFile(superuserPasswordVariable)}`],
        ...containerHardening("postgres"),
        uploads: [
          { file: secretFile(superuserPasswordVariable), content: pulumi.secret(args.superuserVerifier) },
          { file: paths.postgresConf, content: files["postgresql.conf"] },
          { file: paths.pgHbaConf, content: files["pg_hba.conf"] },
          { file: paths.pgIdentConf, content: files["pg_ident.conf"] },
          // A renewed certificate changes these uploads, which replaces the container (Docker cannot update a
          // container's files in place): a restart, acceptable on a developer's stack.
          { file: rendered.tls.files.certificate, content: args.tls.certificate },
          { file: rendered.tls.files.key, content: pulumi.secret(args.tls.privateKey) },
          { file: rendered.tls.files.ca, content: args.tls.caCertificate },
        ],
        volumes: [
          { volumeName: this.dataVolume.name, containerPath: dataMount },
          { volumeName: this.socketVolume.name, containerPath: rendered.placement.paths.postgresSocketDir },
        ],
        shmSize: this.shmSizeMiB,
        // No memlock ulimit for huge pages: PostgreSQL maps them with mmap(MAP_HUGETLB), which Linux does not charge to
        // RLIMIT_MEMLOCK (only SysV SHM_HUGETLB segments), and a hard limit above the daemon's own cannot be set where
        // dockerd lacks CAP_SYS_RESOURCE (rootless Docker; the build machine here): the container would not start
        // ("error setting rlimit type 8: operation not permitted", seen on the real engine).
        healthcheck: postgresHealthcheck(rendered),
        // Sidecars start only once PostgreSQL accepts TCP connections.
        wait: true,
        waitTimeout: 300,
        restart: "unless-stopped",
        // Time for a clean shutdown (the image stops with SIGINT, PostgreSQL's fast shutdown) before Docker kills it.
        stopTimeout: 60,
        destroyGraceSeconds: 60,
        // The stack's namespace (namespace.ts): a restart of this container rejoins it, so PgBouncer, the exporters
        // and the published ports keep reaching the server.
        networkMode: pulumi.interpolate`container:${args.namespaceOwnerId}`,
        // Hashes of the non-secret files: uploads are secret as a whole (the bootstrap SQL holds verifiers), so a
        // preview shows a changed configuration through these labels.
        labels: sortedLabels({
          "pgvector-stack.stack": rendered.spec.stack,
          "pgvector-stack.role": "postgres",
          "pgvector-stack.postgresql-conf-sha256": sha256(files["postgresql.conf"]),
          "pgvector-stack.pg-hba-conf-sha256": sha256(files["pg_hba.conf"]),
          "pgvector-stack.pg-ident-conf-sha256": sha256(files["pg_ident.conf"]),
        }),
      },
      // Fixed container names: the old container must be gone before its replacement takes the name.
      { parent: this, deleteBeforeReplace: true },
    );

    this.registerOutputs({ container: this.container, dataVolume: this.dataVolume, socketVolume: this.socketVolume, shmSizeMiB: this.shmSizeMiB });
  }
}
