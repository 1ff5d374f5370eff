/**
 * Pulumi's mocks (`pulumi.runtime.setMocks`) answering with the real Docker engine: every docker.Network, Volume and
 * Container the program registers is created through the Engine API as terraform-provider-docker 3.x (behind
 * @pulumi/docker 4.6) would create it, docker.Image is built, docker.RemoteImage resolved on the engine, and the
 * registration is answered with the object's real id and state, so outputs flow between resources as under `pulumi up`.
 * newResource is awaited by the mock monitor: a container with `wait` answers only once healthy, one with `attach`
 * only once it has exited, so its dependents wait as they do under the engine. @pulumi/tls and @pulumi/random
 * resources are made for real (tls-resources.ts, random-password.ts); a StackReference reads `previousStackOutputs`.
 *
 * Refused, with the resource and the reason: any input a mock does not implement (container-spec.ts lists what it
 * translates), a RemoteImage not on the engine or without keepLocally, an Image without skipPush, a volume of that
 * name the mocks did not make, explicit providers, `.get` reads, invokes, and every other resource type.
 *
 * Only create is emulated (there is no previous state: no diff, update or replace), and `destroy()` plays
 * `pulumi destroy` from what was created. Every Docker object carries the run label (`pgvector-stack.engine-run`), so
 * `removeEverything()` can leave the engine as it found it, also after a failure. A failed registration rejects the
 * resource's outputs and Pulumi leaves those rejections unhandled (that is how `pulumi up` fails): run a program that
 * is meant to fail in its own process (refusal-program.ts).
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import * as settings from "@pulumi/pulumi/runtime/settings";
import { containerPlan, endpointConfig, labelsWithRun, runLabelKey, type ContainerPlan } from "./container-spec";
import { DockerEngine, EngineApiError, isNotFound, ustar } from "./engine-api";
import { formatGoDuration } from "./go-duration";
import { randomPassword, randomPasswordType } from "./random-password";
import { nested, ResourceInputs } from "./resource-inputs";
import { certRequest, locallySignedCert, type MockResult, privateKey, selfSignedCert, tlsTypes } from "./tls-resources";

export { runLabelKey } from "./container-spec";

export const dockerTypes = {
  network: "docker:index/network:Network",
  volume: "docker:index/volume:Volume",
  container: "docker:index/container:Container",
  remoteImage: "docker:index/remoteImage:RemoteImage",
  image: "docker:index/image:Image",
} as const;
const stackReferenceType = "pulumi:pulumi:StackReference";

export interface EngineMocksOptions {
  /** The stack's config, `namespace:key` → value as the CLI passes it. */
  readonly config: Record<string, string>;
  /** Config keys set with --secret. Defaults to none. */
  readonly secretConfigKeys?: readonly string[];
  readonly project: string;
  readonly stack: string;
  /** Value of the label every Docker object of this run gets (pgvector-stack.engine-run=<runLabel>). */
  readonly runLabel: string;
  /** A line per step (created, waited, built, removed). Defaults to none. */
  readonly log?: (line: string) => void;
  /** Defaults to /var/run/docker.sock. */
  readonly socketPath?: string;
  /** The docker CLI that builds docker.Image. Defaults to /usr/local/bin/docker. */
  readonly dockerCli?: string;
  /** Outputs of the stack's last deploy, as a StackReference to this stack reads them. Defaults to none (a first deploy). */
  readonly previousStackOutputs?: Record<string, unknown>;
}

export type EngineObjectKind = "network" | "volume" | "container" | "image";

/** A Docker object this run created (or, for a volume, adopted: see `adopted`). */
export interface CreatedObject {
  readonly kind: EngineObjectKind;
  /** Pulumi type token. */
  readonly type: string;
  /** Pulumi resource name. */
  readonly name: string;
  /** Container, network or image id; a volume's name. */
  readonly engineId: string;
  /** The object's name on the engine (the image's tag). */
  readonly engineName: string;
  /** Registered with retainOnDelete: `pulumi destroy` leaves it. */
  readonly retainOnDelete: boolean;
  readonly deleteBeforeReplace: boolean;
  /** Labels the mocks added to what the program asked for (the run label). */
  readonly labelsAdded: Readonly<Record<string, string>>;
  /**
   * A volume that already existed with a run label (left by an earlier run's destroy, e.g. a retained data volume):
   * Docker's volume create returns it as it is, and the provider takes it over so.
   */
  readonly adopted: boolean;
}

/** Every resource the program registered (custom or component), in registration order. */
export interface RegisteredResource {
  readonly type: string;
  readonly name: string;
  readonly custom: boolean;
  readonly retainOnDelete: boolean;
  readonly deleteBeforeReplace: boolean;
  /** URNs of the resources it depends on (dependsOn and inputs). */
  readonly dependencies: readonly string[];
  /** Its id once answered; undefined while in flight or after a failure. */
  id?: string;
  /** Why the mocks refused or failed it. */
  error?: string;
}

/** What `destroy()` left on the engine, and why. */
export interface KeptObject extends CreatedObject {
  readonly reason: string;
}

export interface EngineRun {
  readonly runLabel: string;
  readonly engine: DockerEngine;
  /** Docker objects of this run in creation order. */
  readonly created: readonly CreatedObject[];
  readonly registered: readonly RegisteredResource[];
  /** Resolves once every registration so far has been answered; rejects naming each resource the mocks failed. */
  settled(): Promise<void>;
  /**
   * `pulumi destroy`: every created object in reverse creation order, as the provider deletes it, except those
   * registered with retainOnDelete (and what the provider's delete leaves: built images, `rm` containers). Returns what
   * it kept. Idempotent; an object already gone is not an error.
   */
  destroy(): Promise<KeptObject[]>;
  /**
   * Removes every object carrying this run's label or created by it, retained ones too; built images unless
   * `keepImages` (their layers are the next build's cache). Never throws for one already gone.
   */
  removeEverything(options?: { readonly keepImages?: boolean }): Promise<string[]>;
}

interface PendingRequest {
  readonly type: string;
  readonly name: string;
  readonly read: boolean;
  readonly custom: boolean;
  readonly provider: string;
  readonly retainOnDelete: boolean;
  readonly deleteBeforeReplace: boolean;
  readonly dependencies: readonly string[];
}

/** The parts of the mock monitor's gRPC requests the mocks read (proto/resource_pb.js). */
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getCustom(): boolean;
  getProvider(): string;
  getRetainondelete(): boolean;
  getDeletebeforereplace(): boolean;
  getDependenciesList(): string[];
}
interface ReadRequest {
  getType(): string;
  getName(): string;
  getProvider(): string;
}
type Callback = (err: unknown, response?: unknown) => void;
interface MockMonitorLike {
  registerResource(req: RegisterRequest, callback: Callback): unknown;
  readResource(req: ReadRequest, callback: Callback): unknown;
}

/** `docker:index/container:Container` → `docker.Container`, how messages name a resource's type. */
function shortType(type: string): string {
  const [pkg, , kind] = type.split(":");
  return `${pkg}.${kind ?? type}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

interface ContainerInspect {
  Id: string;
  Name: string;
  Image: string;
  State: {
    Status: string;
    Running: boolean;
    Restarting: boolean;
    ExitCode: number;
    Error: string;
    Health?: { Status: string; FailingStreak: number; Log?: { ExitCode: number; Output: string }[] | null };
  };
  Config: {
    Hostname: string;
    Domainname: string;
    User: string;
    Cmd: string[] | null;
    Entrypoint: string[] | null;
    WorkingDir: string;
    Tty: boolean;
    StopSignal?: string;
    StopTimeout?: number;
    Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number };
  };
  HostConfig: {
    ShmSize: number;
    SecurityOpt: string[] | null;
    RestartPolicy: { Name: string; MaximumRetryCount: number };
    Init: boolean | null;
    ReadonlyRootfs: boolean;
    NetworkMode: string;
    IpcMode: string;
    PidMode: string;
    Runtime: string;
    CapAdd: string[] | null;
    CapDrop: string[] | null;
    Ulimits: { Name: string; Soft: number; Hard: number }[] | null;
    LogConfig: { Type: string; Config: Record<string, string> };
    Tmpfs?: Record<string, string> | null;
  };
  NetworkSettings: {
    Bridge: string;
    Ports: Record<string, { HostIp: string; HostPort: string }[] | null> | null;
    Networks: Record<
      string,
      { IPAddress: string; IPPrefixLen: number; Gateway: string; GlobalIPv6Address: string; GlobalIPv6PrefixLen: number; IPv6Gateway: string; MacAddress: string }
    > | null;
  };
}

/**
 * Installs the engine mocks (replacing any mocks installed before) and returns the run. Call `settled()` after the
 * program, and `removeEverything()` in the test's cleanup whatever happened.
 */
export function installEngineMocks(options: EngineMocksOptions): EngineRun {
  const engine = new DockerEngine(options.socketPath);
  const log = options.log ?? (() => {});
  const { runLabel } = options;
  const dockerCli = options.dockerCli ?? "docker";
  const created: CreatedObject[] = [];
  const registered: RegisteredResource[] = [];
  const containerDestroy = new Map<CreatedObject, ContainerPlan["destroy"]>();
  const removed = new Set<CreatedObject>();
  const inFlight = new Set<Promise<unknown>>();
  const failures: string[] = [];
  let started = 0;
  let pending: PendingRequest | undefined;

  const record = (object: Omit<CreatedObject, "retainOnDelete" | "deleteBeforeReplace" | "adopted"> & { adopted?: boolean }, request: PendingRequest): CreatedObject => {
    const entry: CreatedObject = { adopted: false, ...object, retainOnDelete: request.retainOnDelete, deleteBeforeReplace: request.deleteBeforeReplace };
    created.push(entry);
    const id = object.engineId.replace(/^sha256:/, "").slice(0, 12);
    log(`${object.adopted ? "adopted" : "created"} ${object.kind} ${object.engineName}${object.engineId === object.engineName ? "" : ` (${id})`} for ${shortType(object.type)} "${object.name}"`);
    return entry;
  };

  // ---- Docker objects ------------------------------------------------------------------------------------------

  async function network(inputs: ResourceInputs, request: PendingRequest): Promise<MockResult> {
    const name = inputs.requiredString("name");
    const { labels, added } = labelsWithRun(inputs, runLabel);
    const body = {
      Name: name,
      // The provider sends check_duplicate as given (false by default): the engine then allows a second network of
      // the same name.
      CheckDuplicate: inputs.boolean("checkDuplicate") ?? false,
      ...(inputs.has("driver") ? { Driver: inputs.string("driver") } : {}),
      ...(inputs.has("options") ? { Options: inputs.stringMap("options") } : {}),
      Internal: inputs.boolean("internal") ?? false,
      Attachable: inputs.boolean("attachable") ?? false,
      EnableIPv6: inputs.boolean("ipv6") ?? false,
      Labels: labels,
    };
    inputs.refuseUnread();
    const answer = await engine.json<{ Id: string; Warning?: string }>("POST", "/networks/create", { json: body });
    record({ kind: "network", type: request.type, name: request.name, engineId: answer.Id, engineName: name, labelsAdded: added }, request);
    const info = await engine.json<{
      Name: string;
      Driver: string;
      Scope: string;
      Internal: boolean;
      Attachable: boolean;
      EnableIPv6: boolean;
      Options: Record<string, string> | null;
      IPAM: { Driver: string; Config: { Subnet?: string; Gateway?: string; IPRange?: string; AuxiliaryAddresses?: Record<string, string> }[] | null };
    }>("GET", `/networks/${answer.Id}`);
    return {
      id: answer.Id,
      state: {
        ...inputs.echo(),
        name: info.Name,
        driver: info.Driver,
        scope: info.Scope,
        internal: info.Internal,
        attachable: info.Attachable,
        ipv6: info.EnableIPv6,
        options: info.Options ?? {},
        ipamDriver: info.IPAM.Driver,
        ipamConfigs: (info.IPAM.Config ?? []).map((c) => ({ subnet: c.Subnet ?? "", gateway: c.Gateway ?? "", ipRange: c.IPRange ?? "", auxAddress: c.AuxiliaryAddresses ?? {} })),
      },
    };
  }

  async function volume(inputs: ResourceInputs, request: PendingRequest): Promise<MockResult> {
    const name = inputs.string("name");
    const { labels, added } = labelsWithRun(inputs, runLabel);
    const driver = inputs.string("driver");
    const driverOpts = inputs.stringMap("driverOpts");
    inputs.refuseUnread();
    let adopted = false;
    if (name !== undefined && name !== "") {
      const existing = await engine.inspect<{ Labels: Record<string, string> | null }>(`/volumes/${encodeURIComponent(name)}`);
      if (existing !== null) {
        // Docker's create returns an existing volume as it is (its labels and data), which the provider takes over.
        // The mocks do so only for a volume an earlier run made; anything else on this engine is not theirs to adopt.
        const earlierRun = existing.Labels?.[runLabelKey];
        if (earlierRun === undefined) {
          throw inputs.error(`volume ${name} already exists on the engine and was not made by an engine-mocks run; the provider would adopt it (and destroy would delete it), so the mocks stop. Remove it or use another name`);
        }
        adopted = true;
        log(`volume ${name} exists (made by run ${earlierRun}): adopted as the provider does`);
      }
    }
    const answer = await engine.json<{ Name: string; Driver: string; Mountpoint: string; Options: Record<string, string> | null }>("POST", "/volumes/create", {
      json: { ...(name ? { Name: name } : {}), ...(driver ? { Driver: driver } : {}), ...(driverOpts ? { DriverOpts: driverOpts } : {}), Labels: labels },
    });
    record({ kind: "volume", type: request.type, name: request.name, engineId: answer.Name, engineName: answer.Name, labelsAdded: adopted ? {} : added, adopted }, request);
    return { id: answer.Name, state: { ...inputs.echo(), name: answer.Name, driver: answer.Driver, driverOpts: answer.Options ?? {}, mountpoint: answer.Mountpoint } };
  }

  async function imageOnEngine(reference: string): Promise<{ Id: string; RepoDigests: string[] | null } | null> {
    return engine.inspect(`/images/${encodeURIComponent(reference)}/json`);
  }

  async function remoteImage(inputs: ResourceInputs): Promise<MockResult> {
    const name = inputs.requiredString("name");
    if (inputs.boolean("keepLocally") !== true) {
      throw inputs.error(`keepLocally is not true: the provider's delete would remove ${name} from the engine, which other work on this machine uses; the engine mocks refuse`);
    }
    // These only decide when the provider pulls again or replaces the resource; on create they change nothing.
    for (const key of ["pullTriggers", "triggers", "forceRemove"]) inputs.accept(key);
    inputs.refuseUnread();
    const info = await imageOnEngine(name);
    if (info === null) {
      throw inputs.error(`image ${name} is not on the engine (${engine.socketPath}); the provider would pull it, but no registry is reachable from this machine. Build or load it first`);
    }
    // The provider pulls on create even when the image is local (refreshing the tag); the mocks use what is there.
    log(`resolved image ${name} to ${info.Id} (no pull: no registry)`);
    return { id: `${info.Id}${name}`, state: { ...inputs.echo(), imageId: info.Id, repoDigest: info.RepoDigests?.[0] ?? "" } };
  }

  async function image(inputs: ResourceInputs, request: PendingRequest): Promise<MockResult> {
    const imageName = inputs.requiredString("imageName");
    if (inputs.boolean("skipPush") !== true) throw inputs.error(`skipPush is not true: the provider would push ${imageName} after the build, and this machine has no registry`);
    if (inputs.has("registry")) throw inputs.error(`registry is given, which only a push uses; this machine has no registry`);
    // Only a preview looks at buildOnPreview; these mocks are never a preview.
    inputs.accept("buildOnPreview");
    const build = nested(inputs, "build", inputs.object("build") ?? {});
    const context = path.resolve(build.string("context") ?? ".");
    // @pulumi/docker 4.x: an explicit dockerfile is a path from where the program runs; the default is in the context.
    const dockerfileInput = build.string("dockerfile");
    const dockerfile = dockerfileInput === undefined ? path.join(context, "Dockerfile") : path.resolve(dockerfileInput);
    const args = build.stringMap("args") ?? {};
    const target = build.string("target");
    const platform = build.string("platform");
    const buildNetwork = build.string("network");
    const addHosts = build.strings("addHosts") ?? [];
    const builderVersion = build.string("builderVersion") ?? "BuilderBuildKit";
    build.refuseUnread();
    inputs.refuseUnread();
    if (!fs.existsSync(dockerfile)) throw inputs.error(`build.dockerfile ${dockerfile} does not exist`);
    // This machine's docker CLI has no buildx, and the engine's BuildKit API needs a session the CLI would open: the
    // classic builder builds instead, the same Dockerfile instructions (BuildKit-only syntax fails loudly).
    if (builderVersion !== "BuilderV1") log(`building ${imageName} with the classic builder (builderVersion ${builderVersion}: no buildx on this machine)`);
    const cliArgs = [
      "build",
      "--file",
      dockerfile,
      "--tag",
      imageName,
      "--label",
      `${runLabelKey}=${runLabel}`,
      ...Object.keys(args)
        .sort()
        .flatMap((k) => ["--build-arg", `${k}=${args[k]}`]),
      ...(target ? ["--target", target] : []),
      ...(platform ? ["--platform", platform] : []),
      ...(buildNetwork ? ["--network", buildNetwork] : []),
      ...addHosts.flatMap((h) => ["--add-host", h]),
      context,
    ];
    const began = Date.now();
    try {
      await promisify(execFile)(dockerCli, cliArgs, {
        env: { ...process.env, DOCKER_BUILDKIT: "0", DOCKER_HOST: `unix://${engine.socketPath}` },
        maxBuffer: 256 * MiB,
      });
    } catch (error) {
      const e = error as { stderr?: string; stdout?: string; message: string };
      const tail = `${e.stdout ?? ""}${e.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
      throw inputs.error(`docker build of ${imageName} failed: ${e.message.split("\n")[0]}\n${tail}`);
    }
    const info = await imageOnEngine(imageName);
    if (info === null) throw inputs.error(`docker build reported success but ${imageName} is not on the engine`);
    record({ kind: "image", type: request.type, name: request.name, engineId: info.Id, engineName: imageName, labelsAdded: { [runLabelKey]: runLabel } }, request);
    log(`built ${imageName} in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    // A local-only image's repoDigest is its image id (the provider's docs: "for local images, the image ID").
    return {
      id: info.Id,
      state: { ...inputs.echo(), imageName, repoDigest: info.Id, baseImageName: imageName, context, dockerfile, platform: platform ?? "", registryServer: "" },
    };
  }

  async function uploadContent(upload: ContainerPlan["uploads"][number], what: string): Promise<Buffer> {
    if (Buffer.isBuffer(upload.content)) return upload.content;
    try {
      return fs.readFileSync(upload.content.source);
    } catch (error) {
      throw new Error(`${what}: upload ${upload.file}: could not read file ${upload.content.source}: ${(error as Error).message}`);
    }
  }

  async function removeContainer(id: string, removeVolumes: boolean): Promise<void> {
    try {
      await engine.request("DELETE", `/containers/${id}`, { query: { force: 1, v: removeVolumes ? 1 : 0 } });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  function lastHealthLog(info: ContainerInspect): string {
    const entries = info.State.Health?.Log ?? [];
    const last = entries[entries.length - 1];
    return last === undefined ? "no health check has run yet" : `last check exited ${last.ExitCode}: ${last.Output.trim() || "(no output)"}`;
  }

  async function logTail(id: string, tty: boolean): Promise<string> {
    try {
      const text = (await engine.logs(id, tty)).trimEnd();
      return text === "" ? "(the container printed nothing)" : text.split("\n").slice(-20).join("\n");
    } catch (error) {
      return `(its log could not be read: ${(error as Error).message})`;
    }
  }

  /** The provider's `wait`: inspect until the health check reports healthy, failing after waitTimeout seconds. */
  async function waitHealthy(id: string, seconds: number, what: string): Promise<void> {
    const began = Date.now();
    const deadline = began + seconds * 1000;
    for (;;) {
      const info = await engine.json<ContainerInspect>("GET", `/containers/${id}/json`);
      if (info.State.Health?.Status === "healthy") {
        log(`${what}: healthy after ${((Date.now() - began) / 1000).toFixed(1)} s`);
        return;
      }
      // Exited with no restart policy: it can never turn healthy. The provider would wait out the timeout and fail the
      // same way; the mocks fail now.
      const gone = !info.State.Running && !info.State.Restarting && ["", "no"].includes(info.HostConfig.RestartPolicy.Name);
      if (gone || Date.now() >= deadline) {
        const why = gone ? `exited (code ${info.State.ExitCode}) before its health check passed` : `was not healthy within waitTimeout ${seconds} s (health ${info.State.Health?.Status ?? "none"})`;
        throw new Error(`${what}: the container ${why}; ${lastHealthLog(info)}. Its log ends:\n${await logTail(id, info.Config.Tty)}`);
      }
      await sleep(500);
    }
  }

  /**
   * The provider's read right after create: wait (up to containerReadRefreshTimeoutMilliseconds) for the container to
   * be running; with mustRun, one that exited is deleted and the create fails ("container exited immediately").
   */
  async function readAfterCreate(id: string, plan: ContainerPlan, entry: CreatedObject, what: string): Promise<ContainerInspect> {
    const deadline = Date.now() + plan.readTimeoutMs;
    for (;;) {
      const info = await engine.inspect<ContainerInspect>(`/containers/${id}/json`);
      if (info === null) throw new Error(`${what}: the container ${id.slice(0, 12)} is gone right after create (rm: ${plan.destroy.rm}); the provider would record nothing`);
      if (info.State.Running || !plan.mustRun) return info;
      if (info.State.Status === "exited" || info.State.Status === "dead" || Date.now() >= deadline) {
        const tail = await logTail(id, info.Config.Tty);
        await removeContainer(id, plan.destroy.removeVolumes);
        removed.add(entry);
        const why = info.State.Status === "exited" ? `exited immediately with code ${info.State.ExitCode}` : `is ${info.State.Status}, not running, after ${plan.readTimeoutMs} ms`;
        throw new Error(`${what}: the container ${why} and mustRun is true, so the provider deletes it and fails. Its log ends:\n${tail}`);
      }
      await sleep(100);
    }
  }

  /** What the provider's read puts into state, over the inputs it echoes. */
  function containerState(inputs: ResourceInputs, info: ContainerInspect, logs: string | undefined): Record<string, unknown> {
    const hc = info.Config.Healthcheck;
    const ports = Object.entries(info.NetworkSettings.Ports ?? {}).flatMap(([port, bindings]) => {
      const [internal, protocol] = port.split("/");
      return (bindings ?? []).map((b) => ({ internal: Number(internal), external: Number(b.HostPort), ip: b.HostIp, protocol }));
    });
    return {
      ...inputs.echo(),
      name: info.Name.replace(/^\//, ""),
      image: info.Image,
      hostname: info.Config.Hostname,
      domainname: info.Config.Domainname,
      command: info.Config.Cmd ?? [],
      entrypoints: info.Config.Entrypoint ?? [],
      user: info.Config.User,
      workingDir: info.Config.WorkingDir,
      stopSignal: info.Config.StopSignal ?? "",
      stopTimeout: info.Config.StopTimeout ?? 0,
      ...(hc ? { healthcheck: { tests: hc.Test, interval: formatGoDuration(hc.Interval ?? 0), timeout: formatGoDuration(hc.Timeout ?? 0), startPeriod: formatGoDuration(hc.StartPeriod ?? 0), retries: hc.Retries ?? 0 } } : {}),
      shmSize: info.HostConfig.ShmSize / MiB,
      securityOpts: info.HostConfig.SecurityOpt ?? [],
      restart: info.HostConfig.RestartPolicy.Name,
      maxRetryCount: info.HostConfig.RestartPolicy.MaximumRetryCount,
      init: info.HostConfig.Init ?? false,
      readOnly: info.HostConfig.ReadonlyRootfs,
      networkMode: info.HostConfig.NetworkMode,
      ipcMode: info.HostConfig.IpcMode,
      pidMode: info.HostConfig.PidMode,
      runtime: info.HostConfig.Runtime,
      logDriver: info.HostConfig.LogConfig.Type,
      logOpts: info.HostConfig.LogConfig.Config ?? {},
      tmpfs: info.HostConfig.Tmpfs ?? {},
      ...(info.HostConfig.CapAdd?.length || info.HostConfig.CapDrop?.length ? { capabilities: { adds: info.HostConfig.CapAdd ?? [], drops: info.HostConfig.CapDrop ?? [] } } : {}),
      ulimits: (info.HostConfig.Ulimits ?? []).map((u) => ({ name: u.Name, soft: u.Soft, hard: u.Hard })),
      ports,
      bridge: info.NetworkSettings.Bridge,
      networkDatas: Object.entries(info.NetworkSettings.Networks ?? {}).map(([networkName, n]) => ({
        networkName,
        ipAddress: n.IPAddress,
        ipPrefixLength: n.IPPrefixLen,
        gateway: n.Gateway,
        globalIpv6Address: n.GlobalIPv6Address,
        globalIpv6PrefixLength: n.GlobalIPv6PrefixLen,
        ipv6Gateway: n.IPv6Gateway,
        macAddress: n.MacAddress,
      })),
      // The provider sets exit_code only for a container that is not running, container_logs only after attach + logs.
      ...(info.State.Running ? {} : { exitCode: info.State.ExitCode }),
      ...(logs !== undefined ? { containerLogs: logs } : {}),
    };
  }

  /** resourceDockerContainerCreate: create, connect, upload, start, wait / attach, read. */
  async function container(inputs: ResourceInputs, request: PendingRequest): Promise<MockResult> {
    const what = inputs.what;
    const plan = containerPlan(inputs, runLabel);
    const contents = await Promise.all(plan.uploads.map((u) => uploadContent(u, what)));
    if ((await imageOnEngine(plan.image)) === null) {
      throw new Error(`${what}: image ${plan.image} is not on the engine; the provider would pull it, but no registry is reachable from this machine`);
    }
    const answer = await engine.json<{ Id: string; Warnings: string[] | null }>("POST", "/containers/create", { query: { name: plan.name }, json: plan.createBody });
    const id = answer.Id;
    const entry = record({ kind: "container", type: request.type, name: request.name, engineId: id, engineName: plan.name, labelsAdded: plan.labelsAdded }, request);
    containerDestroy.set(entry, plan.destroy);
    for (const attachment of plan.connectAfterCreate) {
      await engine.request("POST", `/networks/${encodeURIComponent(attachment.network)}/connect`, { json: { Container: id, EndpointConfig: endpointConfig(attachment) } });
    }
    // Each upload its own archive at "/", before start, as the provider writes them.
    for (const [i, upload] of plan.uploads.entries()) {
      const archive = ustar([{ name: upload.file, content: contents[i], mode: upload.mode }]);
      await engine.request("PUT", `/containers/${id}/archive`, { query: { path: "/" }, raw: archive, contentType: "application/x-tar" });
    }
    if (plan.start) await engine.request("POST", `/containers/${id}/start`);
    if (plan.waitHealthySeconds !== null) await waitHealthy(id, plan.waitHealthySeconds, what);
    let logs: string | undefined;
    if (plan.attach) {
      const began = Date.now();
      const exit = await engine.json<{ StatusCode: number }>("POST", `/containers/${id}/wait`, { query: { condition: "not-running" } });
      log(`${what}: exited with ${exit.StatusCode} after ${((Date.now() - began) / 1000).toFixed(1)} s`);
      if (plan.logs) {
        const tty = (plan.createBody.Tty as boolean | undefined) ?? false;
        logs = await engine.logs(id, tty);
        // The provider reads the log line by line and ends each with a newline.
        if (logs !== "" && !logs.endsWith("\n")) logs += "\n";
      }
    }
    const info = await readAfterCreate(id, plan, entry, what);
    return { id, state: containerState(inputs, info, logs) };
  }

  function stackReference(inputs: ResourceInputs): MockResult {
    const name = inputs.requiredString("name");
    inputs.refuseUnread();
    const outputs = options.previousStackOutputs ?? {};
    return { id: name, state: { name, outputs, secretOutputNames: [] } };
  }

  // ---- the mocks -----------------------------------------------------------------------------------------------

  async function answer(args: pulumi.runtime.MockResourceArgs, request: PendingRequest): Promise<MockResult> {
    const what = `${shortType(args.type)} "${args.name}"`;
    const inputs = new ResourceInputs(what, args.inputs as Record<string, unknown>);
    if (request.provider !== "") throw inputs.error(`an explicit provider (${request.provider}) is not implemented by the engine mocks: they are the default provider`);
    if (request.read) {
      if (args.type === stackReferenceType) return stackReference(inputs);
      throw inputs.error(`reading an existing resource (${args.type}.get) is not implemented by the engine mocks`);
    }
    const now = new Date();
    switch (args.type) {
      case dockerTypes.network:
        return network(inputs, request);
      case dockerTypes.volume:
        return volume(inputs, request);
      case dockerTypes.container:
        return container(inputs, request);
      case dockerTypes.remoteImage:
        return remoteImage(inputs);
      case dockerTypes.image:
        return image(inputs, request);
      case randomPasswordType:
        return randomPassword(inputs);
      case tlsTypes.privateKey:
        return privateKey(inputs);
      case tlsTypes.selfSignedCert:
        return selfSignedCert(inputs, now);
      case tlsTypes.certRequest:
        return certRequest(inputs);
      case tlsTypes.locallySignedCert:
        return locallySignedCert(inputs, now);
      default:
        throw inputs.error(`resource type ${args.type} is not implemented by the engine mocks (tests/docker-engine/engine-mocks.ts)`);
    }
  }

  async function newResource(args: pulumi.runtime.MockResourceArgs): Promise<{ id: string | undefined; state: Record<string, unknown> }> {
    // The mock monitor calls newResource synchronously from registerResource/readResource, which the wrappers below
    // saw a moment ago: that is where the resource options are.
    const request = pending;
    pending = undefined;
    if (request === undefined || request.type !== args.type || request.name !== args.name) {
      throw new Error(
        `${shortType(args.type)} "${args.name}": the engine mocks did not see its registration request (the mock monitor no longer calls newResource right from registerResource); they cannot tell retainOnDelete`,
      );
    }
    const entry: RegisteredResource = {
      type: args.type,
      name: args.name,
      custom: request.custom,
      retainOnDelete: request.retainOnDelete,
      deleteBeforeReplace: request.deleteBeforeReplace,
      dependencies: request.dependencies,
    };
    registered.push(entry);
    // Components (and the stack) are the program's own: their state is what it registered.
    if (!request.custom && !request.read) return { id: undefined, state: args.inputs as Record<string, unknown> };
    started += 1;
    const work = answer(args, request).then(
      (result) => {
        entry.id = result.id;
        return result;
      },
      (error: unknown) => {
        const message = error instanceof EngineApiError ? `${shortType(args.type)} "${args.name}": ${error.message}` : (error as Error).message;
        entry.error = message;
        failures.push(message);
        log(`FAILED ${message}`);
        throw new Error(message);
      },
    );
    inFlight.add(work);
    void work.catch(() => {}).finally(() => inFlight.delete(work));
    return work;
  }

  pulumi.runtime.setAllConfig(options.config, options.secretConfigKeys ? [...options.secretConfigKeys] : undefined);
  void pulumi.runtime.setMocks(
    {
      newResource,
      call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
        throw new Error(`function ${args.token} is not implemented by the engine mocks (tests/docker-engine/engine-mocks.ts)`);
      },
    },
    options.project,
    options.stack,
    false,
  );
  const monitor = settings.getMonitor() as unknown as MockMonitorLike | undefined;
  if (monitor === undefined || typeof monitor.registerResource !== "function" || typeof monitor.readResource !== "function") {
    throw new Error("installEngineMocks: @pulumi/pulumi's mock monitor is not where runtime/settings getMonitor() used to find it");
  }
  const register = monitor.registerResource.bind(monitor);
  const read = monitor.readResource.bind(monitor);
  monitor.registerResource = (req, callback) => {
    for (const getter of ["getRetainondelete", "getDeletebeforereplace", "getDependenciesList"] as const) {
      if (typeof req[getter] !== "function") throw new Error(`installEngineMocks: RegisterResourceRequest has no ${getter}() (proto/resource_pb.js changed)`);
    }
    pending = {
      type: req.getType(),
      name: req.getName(),
      read: false,
      custom: req.getCustom(),
      provider: req.getProvider(),
      retainOnDelete: req.getRetainondelete(),
      deleteBeforeReplace: req.getDeletebeforereplace(),
      dependencies: req.getDependenciesList(),
    };
    return register(req, callback);
  };
  monitor.readResource = (req, callback) => {
    pending = { type: req.getType(), name: req.getName(), read: true, custom: true, provider: req.getProvider(), retainOnDelete: false, deleteBeforeReplace: false, dependencies: [] };
    return read(req, callback);
  };

  // ---- after the program ---------------------------------------------------------------------------------------

  // @pulumi/pulumi's own "every RPC answered" (runtime/settings.js, internal, so looked up rather than imported).
  const waitForRpcs = (settings as unknown as { waitForRPCs?: () => Promise<void> }).waitForRPCs;

  async function settled(): Promise<void> {
    for (;;) {
      const before = started;
      await Promise.allSettled([...inFlight]);
      if (typeof waitForRpcs === "function") await waitForRpcs();
      for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
      if (inFlight.size === 0 && started === before) break;
    }
    if (failures.length > 0) {
      throw new Error(`${failures.length} resource${failures.length === 1 ? "" : "s"} failed under the engine mocks:\n${failures.map((f) => `  - ${f}`).join("\n")}`);
    }
  }

  /** The provider's delete of one object; false when there was nothing left to delete. */
  async function deleteObject(object: CreatedObject): Promise<boolean> {
    switch (object.kind) {
      case "container": {
        const how = containerDestroy.get(object) ?? { graceSeconds: null, removeVolumes: true, rm: false };
        if (how.graceSeconds !== null) {
          try {
            await engine.request("POST", `/containers/${object.engineId}/stop`, { query: { t: how.graceSeconds } });
          } catch (error) {
            if (isNotFound(error)) return false;
            // 304: already stopped.
            if (!(error instanceof EngineApiError && error.status === 304)) throw error;
          }
        }
        return removeWhenFree(engine, log, "DELETE", `/containers/${object.engineId}`, { force: 1, v: how.removeVolumes ? 1 : 0 }, `container ${object.engineName}`);
      }
      case "network":
        return removeWhenFree(engine, log, "DELETE", `/networks/${object.engineId}`, {}, `network ${object.engineName}`);
      case "volume":
        // Not force: the engine's force also answers 204 for a volume that is gone, which would hide that it was.
        return removeWhenFree(engine, log, "DELETE", `/volumes/${encodeURIComponent(object.engineId)}`, {}, `volume ${object.engineName}`);
      case "image":
        // @pulumi/docker's Image delete is a no-op (destroy keeps built images); removeEverything removes them.
        return false;
    }
  }

  async function destroy(): Promise<KeptObject[]> {
    const kept: KeptObject[] = [];
    for (const object of [...created].reverse()) {
      if (removed.has(object)) continue;
      if (object.retainOnDelete) {
        kept.push({ ...object, reason: "registered with retainOnDelete: pulumi destroy leaves it" });
        continue;
      }
      if (object.kind === "image") {
        kept.push({ ...object, reason: "@pulumi/docker's Image delete is a no-op: the built image stays on the engine" });
        continue;
      }
      if (object.kind === "container" && containerDestroy.get(object)?.rm === true) {
        kept.push({ ...object, reason: "rm: the provider's delete only forgets the container (Docker removes it when it exits)" });
        continue;
      }
      await deleteObject(object);
      removed.add(object);
    }
    return kept;
  }

  async function removeEverything(options: { readonly keepImages?: boolean } = {}): Promise<string[]> {
    // Also what this run created without its label (an adopted volume keeps the label of the run that made it).
    const done = await removeRunObjects(engine, runLabel, created, log, options);
    for (const object of created) removed.add(object);
    return done;
  }

  return { runLabel, engine, created, registered, settled, destroy, removeEverything };
}

/**
 * Retries what the engine refuses while something still uses the object (a network with endpoints, a volume in use),
 * up to 30 s. False when the object was already gone.
 */
async function removeWhenFree(engine: DockerEngine, log: (line: string) => void, method: string, apiPath: string, query: Record<string, number>, describe: string): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await engine.request(method, apiPath, { query });
      log(`removed ${describe}`);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      const busy = error instanceof EngineApiError && (error.status === 409 || error.status === 403);
      if (!busy || Date.now() >= deadline) throw error;
      await sleep(250);
    }
  }
}

/**
 * Removes every container, network, volume and image carrying `pgvector-stack.engine-run=<runLabel>`, and the objects
 * in `alsoThese` (whatever their labels), containers first (with their anonymous volumes). What is already gone is
 * not an error. Returns what it removed, e.g. "volume stack-data".
 */
export async function removeRunObjects(
  engine: DockerEngine,
  runLabel: string,
  alsoThese: readonly Pick<CreatedObject, "kind" | "engineId">[] = [],
  log: (line: string) => void = () => {},
  options: { readonly keepImages?: boolean } = {},
): Promise<string[]> {
  const filters = JSON.stringify({ label: [`${runLabelKey}=${runLabel}`] });
  const containers = (await engine.json<{ Id: string }[]>("GET", "/containers/json", { query: { all: 1, filters } })).map((c) => c.Id);
  const networks = (await engine.json<{ Id: string }[]>("GET", "/networks", { query: { filters } })).map((n) => n.Id);
  const volumes = ((await engine.json<{ Volumes: { Name: string }[] | null }>("GET", "/volumes", { query: { filters } })).Volumes ?? []).map((v) => v.Name);
  const images = (await engine.json<{ Id: string }[]>("GET", "/images/json", { query: { filters } })).map((i) => i.Id);
  for (const object of alsoThese) {
    const list = { container: containers, network: networks, volume: volumes, image: images }[object.kind];
    if (!list.includes(object.engineId)) list.push(object.engineId);
  }
  const done: string[] = [];
  const remove = async (what: string, apiPath: string, query: Record<string, number>) => {
    if (await removeWhenFree(engine, log, "DELETE", apiPath, query, what)) done.push(what);
  };
  for (const id of containers) await remove(`container ${id.slice(0, 12)}`, `/containers/${id}`, { force: 1, v: 1 });
  for (const id of networks) await remove(`network ${id.slice(0, 12)}`, `/networks/${id}`, {});
  for (const name of volumes) await remove(`volume ${name}`, `/volumes/${encodeURIComponent(name)}`, {});
  if (options.keepImages === true) return done;
  for (const id of images) await remove(`image ${id.replace(/^sha256:/, "").slice(0, 12)}`, `/images/${id}`, { force: 1 });
  return done;
}
