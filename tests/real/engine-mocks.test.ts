/**
 * The engine mocks against the real Docker engine (/var/run/docker.sock): a tiny Pulumi program registers a network,
 * a retained volume, a hardened container with uploads, a health check and a published port, a second container in
 * the first one's network namespace, a run-to-completion container, a generated password and a CA with a server
 * certificate. Each claim is then read back from the engine itself (inspect, exec inside the containers), `destroy()`
 * must keep exactly the retained volume, and `removeEverything()` must leave nothing carrying the run's label.
 * Also: a docker.Image build, what the mocks refuse, and the pure translation of inputs (table rows).
 * Cleanup runs in afterAll whatever happened. Never skipped: without an engine, it fails.
 */
import "reflect-metadata";
import { spawnSync } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import * as x509 from "@peculiar/x509";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as pulumiTls from "@pulumi/tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentProgress } from "../../configs/progress";
import { ensureBaseImage } from "../../local/docker/base-image";
import { ensureDockerEngine, type DockerEngine as LocalEngine } from "../../local/docker/engine";
import { freeLoopbackPort } from "../../local/runtime/ports";
import { outputOf } from "../unit/components/pulumi-harness";
import { containerPlan } from "../docker-engine/container-spec";
import { DockerEngine } from "../docker-engine/engine-api";
import { type EngineRun, installEngineMocks, removeRunObjects, runLabelKey } from "../docker-engine/engine-mocks";
import { formatGoDuration, parseGoDuration } from "../docker-engine/go-duration";
import type { RefusalReport } from "../docker-engine/refusal-program";
import { ResourceInputs } from "../docker-engine/resource-inputs";

const engine = new DockerEngine();
const baseImage = "debian:trixie-slim";
const runs: EngineRun[] = [];
/** Runs made by child processes: removed by their label. */
const childRunLabels: string[] = [];
/** What the mocks did, step by step; printed as it happens with ENGINE_MOCKS_LOG=1. */
function note(line: string): void {
  if (process.env.ENGINE_MOCKS_LOG) console.log(line);
}
const MiB = 1024 * 1024;

function startRun(what: string): EngineRun {
  const runLabel = `engine-mocks-test-${process.pid}-${what}`;
  const run = installEngineMocks({ config: {}, project: "engine-mocks-test", stack: what, runLabel, log: (line) => note(`[${what}] ${line}`) });
  runs.push(run);
  return run;
}

/** A TLS server on loopback with `key` and `cert`; a client trusting only `ca` connects as `servername`. */
async function tlsHandshake(key: string, cert: string, ca: string, servername: string): Promise<{ authorized: boolean; subject: string | undefined }> {
  const server = tls.createServer({ key, cert }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as net.AddressInfo).port;
    return await new Promise((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port, ca, servername }, () => {
        resolve({ authorized: socket.authorized, subject: socket.getPeerCertificate().subject?.CN });
        socket.destroy();
      });
      socket.on("error", reject);
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

async function labelled(runLabel: string): Promise<string[]> {
  const filters = JSON.stringify({ label: [`${runLabelKey}=${runLabel}`] });
  const containers = await engine.json<{ Names: string[] }[]>("GET", "/containers/json", { query: { all: 1, filters } });
  const networks = await engine.json<{ Name: string }[]>("GET", "/networks", { query: { filters } });
  const volumes = (await engine.json<{ Volumes: { Name: string }[] | null }>("GET", "/volumes", { query: { filters } })).Volumes ?? [];
  const images = await engine.json<{ Id: string }[]>("GET", "/images/json", { query: { filters } });
  return [...containers.map((c) => `container ${c.Names[0]}`), ...networks.map((n) => `network ${n.Name}`), ...volumes.map((v) => `volume ${v.Name}`), ...images.map((i) => `image ${i.Id}`)];
}

/** The engine on the default socket: the one running, or dockerd started here (and stopped in afterAll). */
let localEngine: LocalEngine | undefined;

beforeAll(async () => {
  localEngine = await ensureDockerEngine(silentProgress);
  await ensureBaseImage(silentProgress, { socketPath: localEngine.socketPath });
}, 15 * 60_000);

afterAll(async () => {
  try {
    const leftovers: string[] = [];
    for (const run of runs) {
      await run.removeEverything();
      leftovers.push(...(await labelled(run.runLabel)));
    }
    for (const runLabel of childRunLabels) {
      await removeRunObjects(engine, runLabel);
      leftovers.push(...(await labelled(runLabel)));
    }
    if (leftovers.length > 0) throw new Error(`left on the engine after cleanup: ${leftovers.join(", ")}`);
  } finally {
    await localEngine?.stop();
  }
}, 120_000);

interface ContainerInfo {
  Id: string;
  Config: { User: string; Labels: Record<string, string>; StopTimeout?: number; Healthcheck: { Test: string[]; Interval: number; Timeout: number; Retries: number } };
  State: { Status: string; Running: boolean; ExitCode: number; Health?: { Status: string } };
  HostConfig: {
    CapAdd: string[] | null;
    CapDrop: string[] | null;
    SecurityOpt: string[] | null;
    ShmSize: number;
    Ulimits: { Name: string; Soft: number; Hard: number }[] | null;
    PortBindings: Record<string, { HostIp: string; HostPort: string }[]>;
    RestartPolicy: { Name: string };
    NetworkMode: string;
    Init: boolean | null;
  };
  NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null>; Networks: Record<string, { Aliases: string[] | null; IPAddress: string }> };
  Mounts: { Type: string; Name: string; Destination: string; RW: boolean }[];
}

describe("the engine mocks on the real engine", () => {
  it(
    "creates what a tiny program registers, with real ids and state, and destroy keeps exactly the retained volume",
    async () => {
      const run = startRun("stack");
      const prefix = `emt-${process.pid}`;
      const hostPort = await freeLoopbackPort();

      // ---- the program ----
      const network = new docker.Network("net", { name: `${prefix}-net`, labels: [{ label: "test.role", value: "net" }] });
      const data = new docker.Volume("data", { name: `${prefix}-data` }, { retainOnDelete: true });
      const debian = new docker.RemoteImage("debian", { name: baseImage, keepLocally: true });
      const a = new docker.Container(
        "a",
        {
          name: `${prefix}-a`,
          image: debian.imageId,
          // tini as PID 1, so the stop at destroy ends sleep at once.
          init: true,
          command: ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 600"],
          user: "nobody",
          uploads: [
            { file: "/etc/engine-test/greeting.txt", content: "hello from the engine mocks\n" },
            { file: "/usr/local/bin/engine-probe", content: "#!/bin/sh\necho probe\n", executable: true },
            { file: "/etc/engine-test/secret.txt", content: pulumi.secret("not-for-inspect\n") },
          ],
          healthcheck: { tests: ["CMD", "test", "-f", "/tmp/ready"], interval: "1s", timeout: "2s", retries: 10, startPeriod: "0s" },
          wait: true,
          waitTimeout: 60,
          ports: [{ internal: 8080, external: hostPort, ip: "127.0.0.1", protocol: "tcp" }],
          capabilities: { drops: ["ALL"], adds: ["CHOWN"] },
          securityOpts: ["no-new-privileges:true"],
          shmSize: 96,
          ulimits: [{ name: "nofile", soft: 1024, hard: 2048 }],
          networksAdvanced: [{ name: network.name, aliases: ["alpha"] }],
          volumes: [{ volumeName: data.name, containerPath: "/data" }],
          restart: "unless-stopped",
          stopTimeout: 5,
          destroyGraceSeconds: 5,
          labels: [{ label: "test.role", value: "a" }],
        },
        { deleteBeforeReplace: true },
      );
      const b = new docker.Container("b", {
        name: `${prefix}-b`,
        image: debian.imageId,
        init: true,
        command: ["sleep", "600"],
        networkMode: pulumi.interpolate`container:${a.id}`,
        volumes: [{ volumeName: data.name, containerPath: "/data", readOnly: true }],
        restart: "unless-stopped",
      });
      const c = new docker.Container(
        "c",
        {
          name: `${prefix}-c`,
          image: debian.imageId,
          command: ["sh", "-c", "echo out-line; sleep 0.2; echo err-line >&2; exit 3"],
          networksAdvanced: [{ name: network.name }],
          attach: true,
          logs: true,
          mustRun: false,
          restart: "no",
        },
        { dependsOn: [a] },
      );
      const password = new random.RandomPassword("password", { length: 24, special: false });
      const caKey = new pulumiTls.PrivateKey("ca-key", { algorithm: "ECDSA", ecdsaCurve: "P256" });
      const ca = new pulumiTls.SelfSignedCert("ca", {
        privateKeyPem: caKey.privateKeyPem,
        isCaCertificate: true,
        setSubjectKeyId: true,
        allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
        subject: { commonName: "engine-mocks test CA", organization: "pgvector-stack" },
        validityPeriodHours: 24,
      });
      const serverKey = new pulumiTls.PrivateKey("server-key", { algorithm: "ECDSA", ecdsaCurve: "P256" });
      const request = new pulumiTls.CertRequest("server-request", {
        privateKeyPem: serverKey.privateKeyPem,
        dnsNames: ["alpha", "localhost"],
        ipAddresses: ["127.0.0.1"],
        subject: { commonName: "alpha", organization: "pgvector-stack" },
      });
      const server = new pulumiTls.LocallySignedCert("server", {
        certRequestPem: request.certRequestPem,
        caCertPem: ca.certPem,
        caPrivateKeyPem: caKey.privateKeyPem,
        allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
        validityPeriodHours: 12,
        earlyRenewalHours: 2,
        setSubjectKeyId: true,
      });
      const began = Date.now();
      await run.settled();
      note(`[stack] program settled in ${((Date.now() - began) / 1000).toFixed(1)} s`);

      // ---- what was created, in order, with its options ----
      const order = run.created.map((o) => `${o.kind}:${o.name}`);
      expect([...order].sort()).toEqual(["container:a", "container:b", "container:c", "network:net", "volume:data"]);
      // Outputs flowed: nothing that needs A (its id, or dependsOn) was created before A answered healthy.
      expect(order.indexOf("container:a")).toBeGreaterThan(Math.max(order.indexOf("network:net"), order.indexOf("volume:data")));
      expect(order.indexOf("container:b")).toBeGreaterThan(order.indexOf("container:a"));
      expect(order.indexOf("container:c")).toBeGreaterThan(order.indexOf("container:a"));
      const byName = Object.fromEntries(run.created.map((o) => [o.name, o]));
      expect(byName.data.retainOnDelete).toBe(true);
      expect(byName.a.deleteBeforeReplace).toBe(true);
      expect(run.created.filter((o) => o.retainOnDelete).map((o) => o.name)).toEqual(["data"]);
      for (const o of run.created) expect(o.labelsAdded).toEqual({ [runLabelKey]: run.runLabel });

      // ---- container A, from the engine ----
      const aId = await outputOf(a.id);
      expect(aId).toBe(byName.a.engineId);
      const aInfo = (await engine.inspect<ContainerInfo>(`/containers/${aId}/json`)) as ContainerInfo;
      expect(aInfo.State.Running).toBe(true);
      expect(aInfo.State.Health?.Status).toBe("healthy");
      expect(aInfo.Config.Labels).toMatchObject({ "test.role": "a", [runLabelKey]: run.runLabel });
      expect(aInfo.Config.User).toBe("nobody");
      expect(aInfo.Config.StopTimeout).toBe(5);
      expect(aInfo.Config.Healthcheck).toMatchObject({ Test: ["CMD", "test", "-f", "/tmp/ready"], Interval: 1e9, Timeout: 2e9, Retries: 10 });
      expect(aInfo.HostConfig.CapDrop).toEqual(["ALL"]);
      expect((aInfo.HostConfig.CapAdd ?? []).map((cap) => cap.replace(/^CAP_/, ""))).toEqual(["CHOWN"]);
      expect(aInfo.HostConfig.SecurityOpt).toEqual(["no-new-privileges:true"]);
      expect(aInfo.HostConfig.ShmSize).toBe(96 * MiB);
      expect(aInfo.HostConfig.Ulimits).toEqual([{ Name: "nofile", Soft: 1024, Hard: 2048 }]);
      expect(aInfo.HostConfig.RestartPolicy.Name).toBe("unless-stopped");
      expect(aInfo.HostConfig.Init).toBe(true);
      expect(aInfo.HostConfig.PortBindings).toEqual({ "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: String(hostPort) }] });
      expect(aInfo.NetworkSettings.Ports["8080/tcp"]).toEqual([{ HostIp: "127.0.0.1", HostPort: String(hostPort) }]);
      expect(Object.keys(aInfo.NetworkSettings.Networks)).toEqual([`${prefix}-net`]);
      expect(aInfo.NetworkSettings.Networks[`${prefix}-net`].Aliases).toContain("alpha");
      expect(aInfo.Mounts).toEqual([expect.objectContaining({ Type: "volume", Name: `${prefix}-data`, Destination: "/data", RW: true })]);
      // The state Pulumi got is the engine's.
      const networkDatas = await outputOf(a.networkDatas);
      expect(networkDatas).toEqual([expect.objectContaining({ networkName: `${prefix}-net`, ipAddress: aInfo.NetworkSettings.Networks[`${prefix}-net`].IPAddress })]);
      expect(await outputOf(a.shmSize)).toBe(96);
      expect(await outputOf(a.healthcheck)).toMatchObject({ interval: "1s", timeout: "2s", startPeriod: "0s" });
      expect(await outputOf(a.exitCode)).toBeUndefined();
      expect(await pulumi.isSecret(a.uploads)).toBe(true);

      // Inside A: the uploads as the provider writes them (root:root, 0644 or 0744), the user, the limits.
      const files = await engine.exec(aId, ["stat", "-c", "%a %U:%G %n", "/etc/engine-test/greeting.txt", "/usr/local/bin/engine-probe", "/etc/engine-test/secret.txt"]);
      expect(files).toMatchObject({ exitCode: 0, stderr: "" });
      expect(files.stdout.trim().split("\n")).toEqual(["644 root:root /etc/engine-test/greeting.txt", "744 root:root /usr/local/bin/engine-probe", "644 root:root /etc/engine-test/secret.txt"]);
      expect((await engine.exec(aId, ["cat", "/etc/engine-test/greeting.txt", "/etc/engine-test/secret.txt"])).stdout).toBe("hello from the engine mocks\nnot-for-inspect\n");
      // 0744 root:root, as the provider writes an executable upload: root runs it, the container's user may not.
      expect((await engine.exec(aId, ["/usr/local/bin/engine-probe"], "root")).stdout).toBe("probe\n");
      expect((await engine.exec(aId, ["/usr/local/bin/engine-probe"])).stdout).toMatch(/permission denied/);
      expect((await engine.exec(aId, ["id", "-un"])).stdout.trim()).toBe("nobody");
      expect((await engine.exec(aId, ["sh", "-c", "ulimit -n; ulimit -Hn"])).stdout.trim().split("\n")).toEqual(["1024", "2048"]);
      const shm = (await engine.exec(aId, ["df", "-k", "/dev/shm"])).stdout.trim().split("\n")[1].split(/\s+/);
      expect(Number(shm[1])).toBe(96 * 1024);
      const status = (await engine.exec(aId, ["cat", "/proc/self/status"])).stdout;
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
      // Bounding set: CAP_CHOWN (bit 0) alone.
      expect(status).toMatch(/^CapBnd:\s+0000000000000001$/m);

      // ---- container B: A's network namespace ----
      const bId = await outputOf(b.id);
      const bInfo = (await engine.inspect<ContainerInfo>(`/containers/${bId}/json`)) as ContainerInfo;
      expect(bInfo.HostConfig.NetworkMode).toBe(`container:${aId}`);
      const netNs = async (id: string) => (await engine.exec(id, ["readlink", "/proc/self/ns/net"])).stdout.trim();
      expect(await netNs(bId)).toMatch(/^net:\[\d+\]$/);
      expect(await netNs(bId)).toBe(await netNs(aId));
      expect(bInfo.Mounts).toEqual([expect.objectContaining({ Name: `${prefix}-data`, Destination: "/data", RW: false })]);
      const write = await engine.exec(bId, ["touch", "/data/x"]);
      expect(write.exitCode).not.toBe(0);
      expect(write.stderr).toMatch(/Read-only file system/);

      // ---- container C: ran to completion, its real exit code and log ----
      expect(await outputOf(c.exitCode)).toBe(3);
      expect(await outputOf(c.containerLogs)).toBe("out-line\nerr-line\n");
      const cInfo = (await engine.inspect<ContainerInfo>(`/containers/${await outputOf(c.id)}/json`)) as ContainerInfo;
      expect(cInfo.State).toMatchObject({ Status: "exited", ExitCode: 3 });

      // ---- the password and the certificates ----
      const secret = await outputOf(password.result);
      expect(secret).toMatch(/^[A-Za-z0-9]{24}$/);
      expect(await pulumi.isSecret(password.result)).toBe(true);
      expect(await pulumi.isSecret(serverKey.privateKeyPem)).toBe(true);
      const serverKeyPem = await outputOf(serverKey.privateKeyPem);
      expect(serverKeyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----\n/);
      expect(await outputOf(serverKey.privateKeyPemPkcs8)).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(await outputOf(serverKey.publicKeyOpenssh)).toMatch(/^ecdsa-sha2-nistp256 AAAA/);
      const caCert = new X509Certificate(await outputOf(ca.certPem));
      const serverCert = new X509Certificate(await outputOf(server.certPem));
      expect(caCert.ca).toBe(true);
      expect(serverCert.ca).toBe(false);
      expect(serverCert.checkIssued(caCert)).toBe(true);
      expect(serverCert.verify(caCert.publicKey)).toBe(true);
      expect(serverCert.checkPrivateKey(createPrivateKey(serverKeyPem))).toBe(true);
      expect(serverCert.subject.split("\n")).toEqual(["O=pgvector-stack", "CN=alpha"]);
      expect(serverCert.issuer).toBe(caCert.subject);
      expect(serverCert.subjectAltName).toBe("DNS:alpha, DNS:localhost, IP Address:127.0.0.1");
      expect(serverCert.checkHost("alpha")).toBe("alpha");
      expect(serverCert.checkIP("127.0.0.1")).toBe("127.0.0.1");
      expect(serverCert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
      const caSki = new x509.X509Certificate(caCert.raw).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
      expect(caSki).toMatch(/^[0-9a-f]{40}$/);
      expect(new x509.X509Certificate(serverCert.raw).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(caSki);
      const end = new Date(await outputOf(server.validityEndTime)).getTime();
      expect(Math.abs(end - (Date.now() + 12 * 3_600_000))).toBeLessThan(120_000);
      expect(new Date(serverCert.validTo).getTime()).toBe(end);
      expect(await outputOf(server.readyForRenewal)).toBe(false);
      // Served and verified as a client with only the CA would (Node's TLS on OpenSSL, as PostgreSQL's).
      const served = await tlsHandshake(serverKeyPem, await outputOf(server.certPem), await outputOf(ca.certPem), "alpha");
      expect(served).toEqual({ authorized: true, subject: "alpha" });

      // ---- pulumi destroy: everything but the retained volume, in reverse order ----
      const kept = await run.destroy();
      expect(kept.map((k) => `${k.kind}:${k.name}`)).toEqual(["volume:data"]);
      for (const id of [aId, bId]) expect(await engine.inspect(`/containers/${id}/json`)).toBeNull();
      expect(await engine.inspect(`/networks/${byName.net.engineId}`)).toBeNull();
      expect(await engine.inspect(`/volumes/${prefix}-data`)).toMatchObject({ Name: `${prefix}-data`, Labels: { [runLabelKey]: run.runLabel } });
      // Idempotent.
      expect((await run.destroy()).map((k) => k.name)).toEqual(["data"]);

      // ---- and the test's own cleanup leaves nothing of the run ----
      expect(await run.removeEverything()).toEqual([`volume ${prefix}-data`]);
      expect(await labelled(run.runLabel)).toEqual([]);
      expect(await run.removeEverything()).toEqual([]);
    },
    240_000,
  );

  it(
    "builds a docker.Image on the engine, runs a container from its repoDigest, and destroy leaves the image as the provider does",
    async () => {
      const run = startRun("build");
      const context = fs.mkdtempSync(path.join(os.tmpdir(), "engine-mocks-build-"));
      try {
        fs.writeFileSync(path.join(context, "Dockerfile"), `FROM ${baseImage}\nARG GREETING\nCOPY hello.txt /hello.txt\nRUN echo "$GREETING" >> /hello.txt\n`);
        fs.writeFileSync(path.join(context, "hello.txt"), "built by the engine mocks\n");
        const imageName = `pgvector-stack-engine-mocks-test/${process.pid}:1`;
        const image = new docker.Image("built", { imageName, build: { context, args: { GREETING: "and a build arg" }, platform: "linux/amd64" }, skipPush: true });
        const runner = new docker.Container("runner", { name: `emt-${process.pid}-runner`, image: image.repoDigest, command: ["cat", "/hello.txt"], attach: true, logs: true, mustRun: false });
        await run.settled();
        const digest = await outputOf(image.repoDigest);
        expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
        expect(await engine.inspect(`/images/${encodeURIComponent(imageName)}/json`)).toMatchObject({ Id: digest, Config: { Labels: { [runLabelKey]: run.runLabel } } });
        expect(await outputOf(runner.containerLogs)).toBe("built by the engine mocks\nand a build arg\n");
        expect(await outputOf(runner.exitCode)).toBe(0);
        const kept = await run.destroy();
        expect(kept.map((k) => [k.kind, k.name, k.reason])).toEqual([["image", "built", expect.stringMatching(/no-op/)]]);
        expect(await run.removeEverything()).toEqual([`image ${digest.slice(7, 19)}`]);
        expect(await engine.inspect(`/images/${encodeURIComponent(imageName)}/json`)).toBeNull();
      } finally {
        fs.rmSync(context, { recursive: true, force: true });
      }
    },
    240_000,
  );

  it(
    "refuses, naming the resource and the input, what it does not implement or what the provider would do differently here",
    async () => {
      // Its own process: Pulumi leaves a failed registration's rejections unhandled (refusal-program.ts says why).
      const runLabel = `engine-mocks-test-${process.pid}-refusals`;
      childRunLabels.push(runLabel);
      const child = spawnSync(process.execPath, ["-r", "tsx/cjs", path.join(__dirname, "..", "docker-engine", "refusal-program.ts"), runLabel, `emt-${process.pid}-refused`], {
        cwd: path.resolve(__dirname, "..", ".."),
        encoding: "utf8",
        timeout: 120_000,
      });
      expect(child.status, child.stderr).toBe(0);
      const report = JSON.parse(child.stdout) as RefusalReport;
      const refused = {
        "with-mounts": /^docker\.Container "with-mounts": input "mounts" is not implemented by the engine mocks/,
        "wait-without-healthcheck": /^docker\.Container "wait-without-healthcheck": wait is true but the container has no healthcheck/,
        "exits-at-once": /^docker\.Container "exits-at-once": the container exited immediately with code 7 and mustRun is true, so the provider deletes it and fails\. Its log ends:\nbye$/,
        missing: /^docker\.RemoteImage "missing": image registry\.invalid\/nothing:here is not on the engine/,
        "not-kept": /^docker\.RemoteImage "not-kept": keepLocally is not true/,
        pushed: /^docker\.Image "pushed": skipPush is not true: .*this machine has no registry$/,
        p224: /^tls\.PrivateKey "p224": ecdsaCurve P224 \(the provider's default\) is not implemented/,
      };
      const failures = (report.failure ?? "").split(/\n {2}- /).slice(1);
      expect(report.failure).toMatch(/^7 resources failed under the engine mocks:\n/);
      for (const [name, message] of Object.entries(refused)) expect(failures.filter((f) => message.test(f)), name).toHaveLength(1);
      // Pulumi saw each of them fail, as `pulumi up` would.
      expect(report.failedRegistrations).toEqual(Object.keys(refused).sort());
      // Only the container that did start was created, and the provider's read deleted it again.
      expect(report.created.map((o) => o.name)).toEqual(["exits-at-once"]);
      expect(await engine.inspect(`/containers/${report.created[0].engineId}/json`)).toBeNull();
      expect(report.kept).toEqual([]);
      expect(await labelled(runLabel)).toEqual([]);
    },
    120_000,
  );
});

describe("inputs as the provider sends them (no engine)", () => {
  it.each([
    ["0", 0],
    ["5s", 5e9],
    ["2m0s", 120e9],
    ["1h0m0s", 3600e9],
    ["1.5s", 1.5e9],
    ["300ms", 300e6],
    ["1h2m3s", 3723e9],
  ])("Go duration %s is %d ns", (text, ns) => {
    expect(parseGoDuration(text)).toBe(ns);
  });

  it.each([
    [0, "0s"],
    [5e9, "5s"],
    [120e9, "2m0s"],
    [3600e9, "1h0m0s"],
    [1.5e9, "1.5s"],
    [300e6, "300ms"],
    [1500, "1.5µs"],
  ])("%d ns prints as Go does: %s", (ns, text) => {
    expect(formatGoDuration(ns)).toBe(text);
  });

  it.each(["5", "5 s", "s", "1d", ""])("%j is not a Go duration", (text) => {
    expect(() => parseGoDuration(text)).toThrow(/is not a Go duration/);
  });

  const plan = (inputs: Record<string, unknown>) => containerPlan(new ResourceInputs(`docker.Container "t"`, { name: "t", image: "img", ...inputs }), "run-1");
  it.each<[string, Record<string, unknown>, (body: Record<string, unknown>) => unknown, unknown]>([
    ["shmSize MiB → ShmSize bytes", { shmSize: 256 }, (b) => (b.HostConfig as Record<string, unknown>).ShmSize, 256 * MiB],
    ["capabilities → CapDrop/CapAdd", { capabilities: { drops: ["ALL"], adds: ["CHOWN"] } }, (b) => [(b.HostConfig as Record<string, unknown>).CapDrop, (b.HostConfig as Record<string, unknown>).CapAdd], [["ALL"], ["CHOWN"]]],
    ["a port with no ip → 0.0.0.0, tcp", { ports: [{ internal: 5432, external: 15432 }] }, (b) => (b.HostConfig as Record<string, unknown>).PortBindings, { "5432/tcp": [{ HostIp: "0.0.0.0", HostPort: "15432" }] }],
    ["a named volume read-only → a bind", { volumes: [{ volumeName: "v", containerPath: "/d", readOnly: true }] }, (b) => (b.HostConfig as Record<string, unknown>).Binds, ["v:/d:ro"]],
    ["init unset → false, as the provider sends it", {}, (b) => (b.HostConfig as Record<string, unknown>).Init, false],
    ["labels + the run label", { labels: [{ label: "a", value: "1" }] }, (b) => b.Labels, { a: "1", [runLabelKey]: "run-1" }],
    ["the first network at create, with aliases", { networksAdvanced: [{ name: "n1", aliases: ["x"] }, { name: "n2" }] }, (b) => [(b.HostConfig as Record<string, unknown>).NetworkMode, b.NetworkingConfig], ["n1", { EndpointsConfig: { n1: { Aliases: ["x"] } } }]],
    ["health check durations → ns", { healthcheck: { tests: ["CMD", "true"], interval: "5s", timeout: "3s", startPeriod: "2m0s", retries: 6 } }, (b) => b.Healthcheck, { Test: ["CMD", "true"], Interval: 5e9, Timeout: 3e9, StartPeriod: 120e9, Retries: 6 }],
  ])("%s", (_, inputs, pick, expected) => {
    expect(pick(plan(inputs).createBody)).toEqual(expected);
  });

  it("takes the rest of the networks, the uploads and the destroy settings from the inputs as the provider does", () => {
    const p = plan({ networksAdvanced: [{ name: "n1" }, { name: "n2", aliases: ["y"] }], uploads: [{ file: "/a", content: "x" }, { file: "/b", contentBase64: "eQ==", executable: true }], destroyGraceSeconds: 30 });
    expect(p.connectAfterCreate).toEqual([{ network: "n2", aliases: ["y"] }]);
    expect(p.uploads.map((u) => [u.file, u.mode.toString(8), (u.content as Buffer).toString()])).toEqual([
      ["/a", "644", "x"],
      ["/b", "744", "y"],
    ]);
    expect(p.destroy).toEqual({ graceSeconds: 30, removeVolumes: true, rm: false });
    expect(p).toMatchObject({ start: true, mustRun: true, attach: false, waitHealthySeconds: null, readTimeoutMs: 15_000 });
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ["an input the mocks do not implement", { gpus: "all" }, /docker\.Container "t": input "gpus" is not implemented by the engine mocks/],
    ["an unknown field inside a list element", { ports: [{ internal: 1, hostIp: "x" }] }, /docker\.Container "t" ports\[0\]: input "hostIp" is not implemented/],
    ["an output given as an input", { exitCode: 0 }, /"exitCode" is an output of the provider/],
    ["the run label set by the program", { labels: [{ label: runLabelKey, value: "x" }] }, /label pgvector-stack\.engine-run is the engine mocks' own/],
    ["an upload with two contents", { uploads: [{ file: "/a", content: "x", contentBase64: "eQ==" }] }, /only one of content, contentBase64 or source may be set/],
    ["a duration Go would not parse", { healthcheck: { tests: ["CMD", "true"], interval: "5" } }, /interval: "5" is not a Go duration/],
    ["container: mode with networks", { networkMode: "container:abc", networksAdvanced: [{ name: "n" }] }, /together with networksAdvanced/],
  ])("refuses %s", (_, inputs, message) => {
    expect(() => plan(inputs)).toThrow(message);
  });
});
