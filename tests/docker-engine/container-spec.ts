/**
 * docker.Container inputs (@pulumi/docker 4.6, bridged from terraform-provider-docker 3.x) as the Engine API calls the
 * provider makes for them (internal/provider/resource_docker_container_funcs.go, resourceDockerContainerCreate): the
 * create body, the networks connected after create, the uploads, and what create, read and delete then do.
 * Plain data in, plain data out; the engine mocks make the calls. Every input is either translated here or refused.
 */
import { parseGoDuration } from "./go-duration";
import { nested, type ResourceInputs } from "./resource-inputs";

/** Added to every Docker object a run creates, so a run's leftovers can be found (and removed) by it. */
export const runLabelKey = "pgvector-stack.engine-run";

/** One file written into the container before it starts (the provider's `upload`). */
export interface UploadPlan {
  readonly file: string;
  /** 0o644, or 0o744 with `executable` (the provider's tar header modes; owner root:root). */
  readonly mode: number;
  /** The content, or the host file the provider would read (`source`). */
  readonly content: Buffer | { readonly source: string };
}

export interface NetworkAttachment {
  readonly network: string;
  readonly aliases: readonly string[];
  readonly ipv4Address?: string;
  readonly ipv6Address?: string;
}

/** What the provider does with a container, step by step. */
export interface ContainerPlan {
  readonly name: string;
  readonly image: string;
  /** POST /containers/create?name=<name> body (Config, HostConfig, NetworkingConfig). */
  readonly createBody: Record<string, unknown>;
  /** networksAdvanced beyond the first (which the create body already joins): POST /networks/{name}/connect. */
  readonly connectAfterCreate: readonly NetworkAttachment[];
  readonly uploads: readonly UploadPlan[];
  readonly start: boolean;
  /** Seconds to wait for the health check to report healthy; null without `wait`. */
  readonly waitHealthySeconds: number | null;
  /** Wait for the container to exit (`attach`), keeping its log (`logs`). */
  readonly attach: boolean;
  readonly logs: boolean;
  readonly mustRun: boolean;
  /** How long the read after create waits for the container to be running (containerReadRefreshTimeoutMilliseconds). */
  readonly readTimeoutMs: number;
  /** What `pulumi destroy` has the provider do (resourceDockerContainerDelete). */
  readonly destroy: {
    /** Stop with this timeout first (destroyGraceSeconds), unless attach; null: remove (SIGKILL) at once. */
    readonly graceSeconds: number | null;
    /** Remove the container's anonymous volumes with it (removeVolumes, the provider's default true). */
    readonly removeVolumes: boolean;
    /** `rm`: the provider only forgets the container. */
    readonly rm: boolean;
  };
  /** Labels the mocks added to the container (the run label). */
  readonly labelsAdded: Readonly<Record<string, string>>;
}

const restartPolicies = ["no", "on-failure", "always", "unless-stopped"];

/** Labels from the provider's [{label, value}] list, plus the run label, refusing a label the run label would overwrite. */
export function labelsWithRun(inputs: ResourceInputs, runLabel: string): { labels: Record<string, string>; added: Record<string, string> } {
  const labels: Record<string, string> = {};
  for (const [i, entry] of (inputs.objects("labels") ?? []).entries()) {
    const item = nested(inputs, `labels[${i}]`, entry);
    const key = item.requiredString("label");
    const value = item.string("value") ?? "";
    item.refuseUnread();
    if (key === runLabelKey) throw inputs.error(`label ${runLabelKey} is the engine mocks' own (it marks what a run created); use another label`);
    labels[key] = value;
  }
  return { labels: { ...labels, [runLabelKey]: runLabel }, added: { [runLabelKey]: runLabel } };
}

function uploadPlans(inputs: ResourceInputs): UploadPlan[] {
  return (inputs.objects("uploads") ?? []).map((entry, i) => {
    const item = nested(inputs, `uploads[${i}]`, entry);
    const file = item.requiredString("file");
    // The provider counts an empty string as not given, and wants exactly one of the three.
    const given = (["content", "contentBase64", "source"] as const).filter((k) => (item.string(k) ?? "") !== "");
    if (given.length !== 1) {
      throw item.error(given.length === 0 ? `one of content, contentBase64 or source must be set (${file})` : `only one of content, contentBase64 or source may be set, got ${given.join(" and ")} (${file})`);
    }
    // sourceHash only makes a changed source file replace the container: nothing to do on create.
    item.accept("sourceHash");
    const mode = item.boolean("executable") === true ? 0o744 : 0o644;
    item.refuseUnread();
    const kind = given[0];
    const text = item.values[kind] as string;
    const content = kind === "content" ? Buffer.from(text, "utf8") : kind === "contentBase64" ? Buffer.from(text, "base64") : { source: text };
    return { file, mode, content };
  });
}

function portBindings(inputs: ResourceInputs): { exposed: Record<string, object>; bindings: Record<string, { HostIp: string; HostPort: string }[]> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const [i, entry] of (inputs.objects("ports") ?? []).entries()) {
    const item = nested(inputs, `ports[${i}]`, entry);
    const internal = item.integer("internal");
    if (internal === undefined) throw item.error(`"internal" is required`);
    const protocol = item.string("protocol") ?? "tcp";
    const ip = item.string("ip") ?? "0.0.0.0";
    const external = item.integer("external");
    item.refuseUnread();
    const port = `${internal}/${protocol}`;
    exposed[port] = {};
    // No external port: the engine picks one (the provider sends an empty HostPort).
    (bindings[port] ??= []).push({ HostIp: ip, HostPort: external === undefined || external === 0 ? "" : String(external) });
  }
  return { exposed, bindings };
}

/** The provider's volumeSetToDockerVolumes: from another container, a bind of a host path or named volume, or anonymous. */
function volumeBinds(inputs: ResourceInputs): { binds: string[]; anonymous: Record<string, object>; volumesFrom: string[] } {
  const binds: string[] = [];
  const anonymous: Record<string, object> = {};
  const volumesFrom: string[] = [];
  for (const [i, entry] of (inputs.objects("volumes") ?? []).entries()) {
    const item = nested(inputs, `volumes[${i}]`, entry);
    const fromContainer = item.string("fromContainer") ?? "";
    const containerPath = item.string("containerPath") ?? "";
    const hostPath = item.string("hostPath") ?? "";
    const volumeName = item.string("volumeName") ?? "";
    const readOnly = item.boolean("readOnly") === true;
    item.refuseUnread();
    if (fromContainer !== "") {
      volumesFrom.push(fromContainer);
    } else if (containerPath !== "") {
      // host_path wins over volume_name, as in the provider.
      const source = hostPath !== "" ? hostPath : volumeName;
      if (source === "") anonymous[containerPath] = {};
      else binds.push(`${source}:${containerPath}${readOnly ? ":ro" : ""}`);
    } else {
      throw item.error(`a volume needs containerPath or fromContainer (the provider refuses "Volume entry without container path or source container")`);
    }
  }
  return { binds, anonymous, volumesFrom };
}

function networkAttachments(inputs: ResourceInputs): NetworkAttachment[] {
  return (inputs.objects("networksAdvanced") ?? []).map((entry, i) => {
    const item = nested(inputs, `networksAdvanced[${i}]`, entry);
    const network = item.requiredString("name");
    const aliases = item.strings("aliases") ?? [];
    const ipv4Address = item.string("ipv4Address");
    const ipv6Address = item.string("ipv6Address");
    item.refuseUnread();
    return { network, aliases, ...(ipv4Address ? { ipv4Address } : {}), ...(ipv6Address ? { ipv6Address } : {}) };
  });
}

export function endpointConfig(attachment: NetworkAttachment): Record<string, unknown> {
  const ipam = { ...(attachment.ipv4Address ? { IPv4Address: attachment.ipv4Address } : {}), ...(attachment.ipv6Address ? { IPv6Address: attachment.ipv6Address } : {}) };
  return { Aliases: [...attachment.aliases], ...(Object.keys(ipam).length > 0 ? { IPAMConfig: ipam } : {}) };
}

function healthConfig(inputs: ResourceInputs): Record<string, unknown> | undefined {
  const raw = inputs.object("healthcheck");
  if (raw === undefined) return undefined;
  const item = nested(inputs, "healthcheck", raw);
  const tests = item.strings("tests");
  if (tests === undefined || tests.length === 0) throw item.error(`"tests" is required, e.g. ["CMD", "pg_isready"] or ["CMD-SHELL", "…"]`);
  const duration = (key: string): number => {
    const text = item.string(key) ?? "0s";
    try {
      return parseGoDuration(text);
    } catch (error) {
      throw item.error(`${key}: ${(error as Error).message}`);
    }
  };
  const config = { Test: tests, Interval: duration("interval"), Timeout: duration("timeout"), StartPeriod: duration("startPeriod"), Retries: item.integer("retries") ?? 0 };
  item.refuseUnread();
  return config;
}

function ulimits(inputs: ResourceInputs): { Name: string; Soft: number; Hard: number }[] {
  return (inputs.objects("ulimits") ?? []).map((entry, i) => {
    const item = nested(inputs, `ulimits[${i}]`, entry);
    const limit = { Name: item.requiredString("name"), Soft: item.integer("soft") ?? 0, Hard: item.integer("hard") ?? 0 };
    item.refuseUnread();
    return limit;
  });
}

function extraHosts(inputs: ResourceInputs): string[] {
  return (inputs.objects("hosts") ?? []).map((entry, i) => {
    const item = nested(inputs, `hosts[${i}]`, entry);
    const line = `${item.requiredString("host")}:${item.requiredString("ip")}`;
    item.refuseUnread();
    return line;
  });
}

function capabilities(inputs: ResourceInputs): { CapAdd?: string[]; CapDrop?: string[] } {
  const raw = inputs.object("capabilities");
  if (raw === undefined) return {};
  const item = nested(inputs, "capabilities", raw);
  const adds = item.strings("adds") ?? [];
  const drops = item.strings("drops") ?? [];
  item.refuseUnread();
  return { ...(adds.length > 0 ? { CapAdd: adds } : {}), ...(drops.length > 0 ? { CapDrop: drops } : {}) };
}

/** Outputs of the provider's schema that a program cannot set: given as inputs, they would be silently overwritten. */
const outputOnly = ["bridge", "containerLogs", "exitCode", "networkDatas"];

/**
 * The provider's create of one container, as plain data. `image` must already be what the engine knows (an image id
 * or a local reference); the mocks check that before they create anything.
 */
export function containerPlan(inputs: ResourceInputs, runLabel: string): ContainerPlan {
  for (const key of outputOnly) {
    if (inputs.has(key)) throw inputs.error(`"${key}" is an output of the provider (read back from the engine), not an input`);
  }
  // The provider's schema requires a name; it does not autoname containers, and neither do the mocks.
  const name = inputs.requiredString("name");
  const image = inputs.requiredString("image");
  const { labels, added } = labelsWithRun(inputs, runLabel);
  const command = inputs.strings("command");
  if (command?.some((c) => c === "")) throw inputs.error(`values for command may not be empty (the provider refuses them): ${JSON.stringify(command)}`);
  const { exposed, bindings } = portBindings(inputs);
  const { binds, anonymous, volumesFrom } = volumeBinds(inputs);
  const attachments = networkAttachments(inputs);
  const networkMode = inputs.string("networkMode");
  if (networkMode !== undefined && attachments.length > 0) {
    // container:<id> cannot join networks at all; any other mode with networksAdvanced the mocks do not implement.
    throw inputs.error(`networkMode "${networkMode}" together with networksAdvanced (${attachments.map((a) => a.network).join(", ")}) is not implemented by the engine mocks; give one of them`);
  }
  const restart = inputs.string("restart") ?? "no";
  if (!restartPolicies.includes(restart)) throw inputs.error(`restart "${restart}" must be one of ${restartPolicies.join(", ")}`);
  const shmSizeMiB = inputs.integer("shmSize");
  const memoryMiB = inputs.integer("memory");
  const stopTimeout = inputs.integer("stopTimeout");
  const stopSignal = inputs.string("stopSignal");
  const tmpfs = inputs.stringMap("tmpfs");
  const logOpts = inputs.stringMap("logOpts");
  const logDriver = inputs.string("logDriver");
  const sysctls = inputs.stringMap("sysctls");
  const groupAdds = inputs.strings("groupAdds");
  const hosts = extraHosts(inputs);
  const limits = ulimits(inputs);
  const health = healthConfig(inputs);
  const first = attachments[0];

  const config: Record<string, unknown> = {
    Image: image,
    Hostname: inputs.string("hostname") ?? "",
    Domainname: inputs.string("domainname") ?? "",
    Tty: inputs.boolean("tty") ?? false,
    OpenStdin: inputs.boolean("stdinOpen") ?? false,
    Labels: labels,
    ...(inputs.has("envs") ? { Env: inputs.strings("envs") } : {}),
    ...(command !== undefined && command.length > 0 ? { Cmd: command } : {}),
    ...(inputs.has("entrypoints") && (inputs.strings("entrypoints") ?? []).length > 0 ? { Entrypoint: inputs.strings("entrypoints") } : {}),
    ...(inputs.has("user") ? { User: inputs.string("user") } : {}),
    ...(inputs.has("workingDir") ? { WorkingDir: inputs.string("workingDir") } : {}),
    ...(Object.keys(exposed).length > 0 ? { ExposedPorts: exposed } : {}),
    ...(Object.keys(anonymous).length > 0 ? { Volumes: anonymous } : {}),
    ...(health !== undefined ? { Healthcheck: health } : {}),
    ...(stopTimeout !== undefined ? { StopTimeout: stopTimeout } : {}),
    ...(stopSignal !== undefined ? { StopSignal: stopSignal } : {}),
  };
  const hostConfig: Record<string, unknown> = {
    Privileged: inputs.boolean("privileged") ?? false,
    RestartPolicy: { Name: restart, MaximumRetryCount: inputs.integer("maxRetryCount") ?? 0 },
    AutoRemove: inputs.boolean("rm") ?? false,
    ReadonlyRootfs: inputs.boolean("readOnly") ?? false,
    // The provider sends init explicitly (false unless asked), overriding the daemon's default.
    Init: inputs.boolean("init") ?? false,
    ...(logDriver !== undefined || logOpts !== undefined ? { LogConfig: { Type: logDriver ?? "", ...(logOpts ? { Config: logOpts } : {}) } } : {}),
    ...(tmpfs !== undefined ? { Tmpfs: tmpfs } : {}),
    ...(Object.keys(bindings).length > 0 ? { PortBindings: bindings } : {}),
    ...(hosts.length > 0 ? { ExtraHosts: hosts } : {}),
    ...(binds.length > 0 ? { Binds: binds } : {}),
    ...(volumesFrom.length > 0 ? { VolumesFrom: volumesFrom } : {}),
    ...(limits.length > 0 ? { Ulimits: limits } : {}),
    ...capabilities(inputs),
    ...(inputs.has("securityOpts") ? { SecurityOpt: inputs.strings("securityOpts") } : {}),
    // shm_size and memory are MiB in the provider's schema, bytes in the Engine API.
    ...(shmSizeMiB !== undefined ? { ShmSize: shmSizeMiB * 1024 * 1024 } : {}),
    ...(memoryMiB !== undefined ? { Memory: memoryMiB * 1024 * 1024 } : {}),
    ...(sysctls !== undefined ? { Sysctls: sysctls } : {}),
    ...(groupAdds !== undefined ? { GroupAdd: groupAdds } : {}),
    ...(inputs.has("ipcMode") ? { IpcMode: inputs.string("ipcMode") } : {}),
    ...(inputs.has("pidMode") ? { PidMode: inputs.string("pidMode") } : {}),
    // With networksAdvanced the container starts on its first network (as `docker run --network` does), so it never
    // touches the default bridge; the others are connected before start.
    ...(networkMode !== undefined ? { NetworkMode: networkMode } : first !== undefined ? { NetworkMode: first.network } : {}),
  };

  const start = inputs.boolean("start") ?? true;
  const wait = inputs.boolean("wait") ?? false;
  const waitTimeout = inputs.integer("waitTimeout") ?? 60;
  const attach = inputs.boolean("attach") ?? false;
  const logs = inputs.boolean("logs") ?? false;
  const mustRun = inputs.boolean("mustRun") ?? true;
  const readTimeoutMs = inputs.integer("containerReadRefreshTimeoutMilliseconds") ?? 15_000;
  const graceSeconds = inputs.integer("destroyGraceSeconds");
  const removeVolumes = inputs.boolean("removeVolumes") ?? true;
  const rm = hostConfig.AutoRemove as boolean;
  const uploads = uploadPlans(inputs);
  if (wait && health === undefined) {
    throw inputs.error(`wait is true but the container has no healthcheck: nothing would ever report it healthy (the provider would wait ${waitTimeout} s and fail)`);
  }
  if (logs && !attach) throw inputs.error(`logs is true without attach: the provider keeps a log only of a container it attached to`);
  if (!start && mustRun) throw inputs.error(`start is false with mustRun (the default true): the provider's read would find it not running and delete it; set mustRun: false`);
  inputs.refuseUnread();

  return {
    name,
    image,
    createBody: {
      ...config,
      HostConfig: hostConfig,
      NetworkingConfig: first === undefined ? {} : { EndpointsConfig: { [first.network]: endpointConfig(first) } },
    },
    connectAfterCreate: attachments.slice(1),
    uploads,
    start,
    waitHealthySeconds: wait ? waitTimeout : null,
    attach,
    logs,
    mustRun,
    readTimeoutMs,
    destroy: { graceSeconds: graceSeconds !== undefined && graceSeconds > 0 && !attach ? graceSeconds : null, removeVolumes, rm },
    labelsAdded: added,
  };
}
