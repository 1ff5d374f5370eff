import * as k8s from "@pulumi/kubernetes";
import { resolvedReferences, type StackImageReferences } from "../stack-images";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { PodResourcePlan } from "../../configs/kubernetes-resources";
import type { Rendered } from "../../configs/rendered";
import { passwordKey, roleKinds, type PasswordArgs, type RoleKind } from "../../configs/roles";
import { bootstrapScript, connectionUrl, type StackPasswords, stackVerifiers, userlistFor } from "./credentials";
import { type KubernetesNames, kubernetesNames, kubernetesProblems, objectLabels, secretKeys, selectorLabels, sortedRecord } from "./layout";
import {
  databaseDisruptionBudgetSpec,
  databaseNetworkPolicySpec,
  databasePorts,
  databaseServiceSpecs,
  type Endpoint,
  type Labels,
  namespaceNameLabel,
} from "./network";
import { databaseStatefulSetSpec } from "./pod-template";
import { ServerTls } from "./server-tls";

export interface VectorPostgresArgs extends PasswordArgs<pulumi.Input<string>> {
  /**
   * The rendered stack: files, memory plan, placement, launches, scrape jobs, roles, and from its spec the
   * namespace, storage and the NetworkPolicy's client and Prometheus selectors. Required; no default.
   */
  readonly rendered: Rendered;
  /** What the containers run (components/stack-images.ts). Required; no default. */
  readonly images: StackImageReferences;
  /** Prefix of every Kubernetes object name and the `app.kubernetes.io/instance` label. Defaults to the component name. */
  readonly objectPrefix?: string;
  /** Namespace of every object; pass a Namespace's `metadata.name` to create them after it. Defaults to rendered.spec.kubernetes.namespace. */
  readonly namespace?: pulumi.Input<string>;
  /**
   * Passwords, one per role kind (configs/roles.ts): `appPassword`, `ownerPassword`, `readOnlyPassword`,
   * `canaryPassword`, `monitorPassword`, `statsPassword`, `pgbouncerAdminPassword`, `superuserPassword` — e.g. Pulumi
   * config secrets. Each defaults to a generated 32-character password. Changing one and running `pulumi up` rotates
   * it: the Secrets change, and the tls-reloader sidecar applies the new verifier and reloads PgBouncer.
   */
  /** Labels of the post-deploy hook's pods, admitted to both ports. Defaults to the hook's selector labels (see PostDeployJob). */
  readonly hookPodSelector?: Labels;
  /** Labels of the canary's pods, admitted to both ports. Defaults to the canary's selector labels (see VectorCanary). */
  readonly canaryPodSelector?: Labels;
}

/**
 * PostgreSQL 17 + pgvector as a one-pod StatefulSet, PgBouncer and the TLS reloader as native sidecars, both
 * exporters, node_exporter and mtail, the Services, the NetworkPolicy and PodDisruptionBudget, the Secrets they read,
 * and the TLS Secret both servers present (ServerTls). See pod-template.ts for the pod itself.
 */
export class VectorPostgres extends pulumi.ComponentResource {
  public readonly names: KubernetesNames;
  /** `app.kubernetes.io/instance` of the database objects. */
  public readonly instance: string;
  public readonly statefulSet: k8s.apps.v1.StatefulSet;
  public readonly services: { readonly pooled: k8s.core.v1.Service; readonly direct: k8s.core.v1.Service; readonly headless: k8s.core.v1.Service };
  /** The Secret with `direct-url` (the owner) and `pooled-url` (the application role) for the post-deploy hook. */
  public readonly hookSecret: k8s.core.v1.Secret;
  /** The Secret with the canary role's `direct-url` and `pooled-url`. */
  public readonly canarySecret: k8s.core.v1.Secret;
  public readonly pooled: Endpoint;
  public readonly direct: Endpoint;
  /** The application role's URL through PgBouncer (secret). */
  public readonly connectionString: pulumi.Output<string>;
  /** The application role's URL straight to PostgreSQL (secret). */
  public readonly directConnectionString: pulumi.Output<string>;
  /** The read-only role's URL through PgBouncer (secret). */
  public readonly readOnlyConnectionString: pulumi.Output<string>;
  /** The owner's URL straight to PostgreSQL, for migrations (secret). */
  public readonly ownerConnectionString: pulumi.Output<string>;
  /**
   * The CA certificate (PEM) clients verify both servers with; undefined with spec.tls.certManagerIssuer (the
   * issuer's CA, in the TLS Secret's ca.crt).
   */
  public readonly caCertificate: pulumi.Output<string> | undefined;
  /** Requests, limits and the memory budget behind them. */
  public readonly resources: PodResourcePlan;

  constructor(name: string, args: VectorPostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    // Args carry passwords: what super() receives is recorded in state, so it gets nothing.
    super("pgvector-stack:kubernetes:VectorPostgres", name, {}, opts);
    const { rendered } = args;
    const { spec, roles } = rendered;
    const problems = kubernetesProblems(rendered);
    if (problems.length > 0) throw new Error(`VectorPostgres ${name}:\n  - ${problems.join("\n  - ")}`);

    const instance = args.objectPrefix ?? name;
    const names = kubernetesNames(instance);
    const namespace = pulumi.output(args.namespace ?? spec.kubernetes.namespace);
    const clusterDomain = spec.kubernetes.clusterDomain;
    const { database } = spec.postgres;
    const appUser = roles.app;
    const labels = objectLabels(instance, "database", spec.stack);
    const selector = selectorLabels(instance, "database");
    const metadata = (objectName: string) => ({ labels, name: objectName, namespace });
    const ports = databasePorts(rendered);
    this.names = names;
    this.instance = instance;
    if (rendered.kubernetesPod === null) throw new Error(`VectorPostgres ${name}: the rendered stack has no Kubernetes pod plan (target ${spec.target})`);
    this.resources = rendered.kubernetesPod;

    const password = (role: string, given: pulumi.Input<string> | undefined): pulumi.Output<string> =>
      given !== undefined
        ? pulumi.secret(given)
        : pulumi.secret(new random.RandomPassword(`${name}-${role}-password`, { length: 32, special: false }, { parent: this }).result);
    const passwords: pulumi.Output<StackPasswords> = pulumi
      .all(roleKinds.map((kind) => password(kind, args[passwordKey(kind)])))
      .apply((list) => Object.fromEntries(roleKinds.map((kind, i) => [kind, list[i]])) as StackPasswords);
    // Verifiers, never passwords, go to PostgreSQL and PgBouncer; salts are derived (credentials.ts), so the same
    // password gives the same verifier on every run and nothing changes until a password does.
    const verifiers = passwords.apply((p) => stackVerifiers(spec.stack, roles, p));

    // Every rendered file, byte for byte: the pod mounts the ones it reads; the rest (alert rules, index plan) are
    // here so `kubectl get configmap` shows exactly what this stack deployed.
    const config = new k8s.core.v1.ConfigMap(`${name}-config`, { metadata: metadata(names.config), data: sortedRecord(rendered.files) }, { parent: this });

    const credentials = new k8s.core.v1.Secret(
      `${name}-credentials`,
      {
        metadata: metadata(names.credentials),
        type: "Opaque",
        stringData: {
          [secretKeys.monitorPassword]: passwords.monitor,
          [secretKeys.statsPassword]: passwords.stats,
          [secretKeys.pgbouncerAdminPassword]: passwords.pgbouncerAdmin,
          // A verifier, not the password: the entrypoint hands it to initdb, which stores it as it is; the superuser
          // never logs in with a password anyway (socket and peer only).
          [secretKeys.superuserVerifier]: verifiers.apply((v) => v[roles.superuser]),
        },
      },
      { parent: this },
    );
    // Roles and verifiers: run by the image when it initialises an empty data volume, and by the tls-reloader sidecar
    // at every pod start and whenever this Secret changes (a password rotated by `pulumi up`).
    const bootstrap = new k8s.core.v1.Secret(
      `${name}-bootstrap`,
      { metadata: metadata(names.bootstrap), type: "Opaque", stringData: { [secretKeys.bootstrap]: verifiers.apply((v) => bootstrapScript(rendered, v)) } },
      { parent: this },
    );
    const pgbouncerAuth = new k8s.core.v1.Secret(
      `${name}-pgbouncer-auth`,
      { metadata: metadata(names.pgbouncerAuth), type: "Opaque", stringData: { [secretKeys.userlist]: verifiers.apply((v) => userlistFor(roles, v)) } },
      { parent: this },
    );

    // The server certificate and the CA (names.tls), from the program's own CA or from cert-manager.
    const tls = new ServerTls(`${name}-tls`, { rendered, names, namespace, labels }, { parent: this });
    this.caCertificate = tls.caCertificate;

    // Every URL verifies the server fully against the CA at rendered.tls.files.ca: where the hook and the canary
    // mount it, and where an application is asked to mount the app Secret's ca.crt.
    const tlsQuery = rendered.tls.clientQuery;
    const dns = (service: string) => pulumi.interpolate`${service}.${namespace}.svc.${clusterDomain}`;
    this.pooled = { host: dns(names.pooled), port: ports.pgbouncer };
    this.direct = { host: dns(names.direct), port: ports.postgres };
    const url = (kind: RoleKind, endpoint: Endpoint) =>
      pulumi.secret(
        pulumi.all([passwords, endpoint.host]).apply(([p, host]) => connectionUrl(roles.plan.names[kind], p[kind], host, endpoint.port, database, tlsQuery)),
      );
    this.connectionString = url("app", this.pooled);
    this.directConnectionString = url("app", this.direct);
    this.readOnlyConnectionString = url("readOnly", this.pooled);
    this.ownerConnectionString = url("owner", this.direct);
    // For applications. `uri` verifies the server against the CA at rendered.tls.files.ca, so an application mounts
    // this Secret's ca.crt there (its annotation says so). With cert-manager the CA is the issuer's, which the
    // program does not know: the application mounts ca.crt of the TLS Secret (or the issuer's trust bundle) instead.
    const caPath = rendered.tls.files.ca;
    new k8s.core.v1.Secret(
      `${name}-app`,
      {
        metadata: {
          annotations: {
            "pgvector-stack/ca-certificate":
              tls.caCertificate === undefined
                ? `uri verifies the server (sslmode=verify-full) against ${caPath}: mount key ${secretKeys.appCa} of Secret ${names.tls} (cert-manager's issuer CA) there`
                : `uri verifies the server (sslmode=verify-full) against ${caPath}: mount this Secret's key ${secretKeys.appCa} there`,
          },
          ...metadata(names.app),
        },
        type: "Opaque",
        stringData: {
          ...(tls.caCertificate === undefined ? {} : { [secretKeys.appCa]: tls.caCertificate }),
          database,
          host: this.pooled.host,
          password: passwords.app,
          port: String(ports.pgbouncer),
          uri: this.connectionString,
          username: appUser,
        },
      },
      { parent: this },
    );
    // The hook builds indexes and creates tables as the owner, straight to PostgreSQL, and runs its smoke benchmark
    // through PgBouncer as the application does; neither needs the superuser.
    this.hookSecret = new k8s.core.v1.Secret(
      `${name}-hook`,
      {
        metadata: metadata(names.hookCredentials),
        type: "Opaque",
        stringData: { [secretKeys.hookDirectUrl]: this.ownerConnectionString, [secretKeys.hookPooledUrl]: this.connectionString },
      },
      { parent: this },
    );
    // The canary logs in as its own role, which reaches nothing of the application's.
    this.canarySecret = new k8s.core.v1.Secret(
      `${name}-canary`,
      {
        metadata: metadata(names.canaryCredentials),
        type: "Opaque",
        stringData: { [secretKeys.hookDirectUrl]: url("canary", this.direct), [secretKeys.hookPooledUrl]: url("canary", this.pooled) },
      },
      { parent: this },
    );

    const serviceSpecs = databaseServiceSpecs(selector, ports);
    const service = (role: "pooled" | "direct" | "headless") =>
      new k8s.core.v1.Service(`${name}-${role}`, { metadata: metadata(names[role]), spec: serviceSpecs[role] }, { parent: this });
    this.services = { headless: service("headless"), pooled: service("pooled"), direct: service("direct") };

    this.statefulSet = new k8s.apps.v1.StatefulSet(
      `${name}-statefulset`,
      { metadata: metadata(names.statefulSet), spec: resolvedReferences(args.images).apply((images) => databaseStatefulSetSpec({ rendered, names, instance, resources: this.resources, images })) },
      {
        parent: this,
        // Object names are fixed strings, so Pulumi sees no dependency on the objects the pod mounts: state it.
        dependsOn: [config, credentials, bootstrap, pgbouncerAuth, tls.ready],
        // A safety net, not the way to change storage. Kubernetes refuses any change to a live StatefulSet's
        // volumeClaimTemplates, and @pulumi/kubernetes 4.23 plans a change there as delete-before-replace (its diff
        // lists .spec.volumeClaimTemplates as forceNew): PostgreSQL would go down, and the recreated StatefulSet would
        // adopt the existing PVC unresized. So a changed template (storage size, class) never reaches the cluster; a
        // first create still uses it. program.ts refuses such a change beforehand, pointing to docs/runbooks.md
        // ("Growing the data volume") for what to do instead.
        ignoreChanges: ["spec.volumeClaimTemplates"],
      },
    );

    new k8s.policy.v1.PodDisruptionBudget(
      `${name}-pdb`,
      { metadata: metadata(names.disruptionBudget), spec: databaseDisruptionBudgetSpec(selector) },
      { parent: this },
    );
    new k8s.networking.v1.NetworkPolicy(
      `${name}-network-policy`,
      {
        metadata: metadata(names.networkPolicy),
        spec: namespace.apply((ns) =>
          databaseNetworkPolicySpec(selector, ports, {
            namespace: ns,
            // The spec's default (null): the database's own namespace, whatever its name turns out to be.
            clientNamespaces: spec.kubernetes.clientNamespaceSelector ?? namespaceNameLabel(ns),
            clientPods: spec.kubernetes.clientPodSelector,
            hookPods: args.hookPodSelector ?? selectorLabels(instance, "postdeploy-hook"),
            canaryPods: args.canaryPodSelector ?? selectorLabels(instance, "canary"),
            prometheusNamespaces: spec.kubernetes.prometheusNamespaceSelector,
            prometheusPods: spec.kubernetes.prometheusPodSelector,
          }),
        ),
      },
      { parent: this },
    );

    this.registerOutputs({
      statefulSet: this.statefulSet,
      services: this.services,
      hookSecret: this.hookSecret,
      pooled: this.pooled,
      direct: this.direct,
      connectionString: this.connectionString,
      directConnectionString: this.directConnectionString,
      readOnlyConnectionString: this.readOnlyConnectionString,
      ownerConnectionString: this.ownerConnectionString,
      canarySecret: this.canarySecret,
      caCertificate: this.caCertificate,
      resources: this.resources,
    });
  }
}
