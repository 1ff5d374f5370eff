/**
 * cli/offline-program.ts with small fixture programs: every registered resource recorded (type, name, inputs),
 * sorted; Pulumi secrets and `secure:` config as the redaction marker; a secret that reaches a non-secret input
 * redacted and reported; target local not run; a missing index.ts reported as such; a failing program fails loudly.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeSecretPrefix, programConfig, recordStacks, type OfflineRender } from "../../cli/offline-program";
import { redactionMarker } from "../../drift/resources";

const plantedCiphertext = "v1:PLANTED-CIPHERTEXT-a8f3e1";
const plantedPlaintext = "planted-plaintext-7c2d";

function fixtureProgram(): string {
  const mod = (name: string) => JSON.stringify(require.resolve(name));
  return `
const pulumi = require(${mod("@pulumi/pulumi")});
const random = require(${mod("@pulumi/random")});
const k8s = require(${mod("@pulumi/kubernetes")});
const config = new pulumi.Config("pgvector-stack");
const stack = pulumi.getStack();
if (config.getBoolean("fail")) throw new Error("boom from the program");
const node = config.requireObject("node");
class Database extends pulumi.ComponentResource {
  constructor(name, opts) {
    super("pgvector-stack:test:Database", name, {}, opts);
    const password = config.getSecret("superuserPassword") ?? new random.RandomPassword(name + "-password", { length: 32, special: false }, { parent: this }).result;
    new k8s.core.v1.Secret(name + "-credentials", { metadata: { namespace: "ns" }, stringData: { password } }, { parent: this });
    new k8s.core.v1.ConfigMap(name + "-config", { metadata: { namespace: "ns", labels: { zeta: "z", alpha: "a" } }, data: { memory: node.memory, note: pulumi.secret(${JSON.stringify(plantedPlaintext)}) } }, { parent: this });
    if (config.getBoolean("leak")) {
      new k8s.core.v1.ConfigMap(name + "-leak", { data: { url: pulumi.unsecret(pulumi.output(password)).apply((p) => "postgresql://app:" + p + "@db/app") } }, { parent: this });
    }
    this.registerOutputs({});
  }
}
const db = new Database(stack);
module.exports = { target: config.require("target"), secretOutput: pulumi.secret("x"), db: db.urn };
`;
}

function stackFile(config: Record<string, unknown>): string {
  return `config:\n${Object.entries(config)
    .map(([k, v]) => `  pgvector-stack:${k}: ${JSON.stringify(v)}`)
    .join("\n")}\n`;
}

describe("the offline program runner", () => {
  let root: string;
  let recorded: OfflineRender;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-offline-test-"));
    fs.writeFileSync(path.join(root, "Pulumi.yaml"), "name: pgvector-stack\nruntime: nodejs\n");
    fs.writeFileSync(path.join(root, "index.ts"), fixtureProgram());
    fs.writeFileSync(path.join(root, "Pulumi.dev.yaml"), stackFile({ target: "kubernetes", node: { memory: "8Gi", cpus: 4 } }));
    fs.writeFileSync(path.join(root, "Pulumi.leaky.yaml"), stackFile({ target: "kubernetes", node: { memory: "8Gi" }, leak: true }));
    fs.writeFileSync(path.join(root, "Pulumi.perf.yaml"), stackFile({ target: "local", node: { memory: "auto" }, fail: true }));
    fs.writeFileSync(
      path.join(root, "Pulumi.sec.yaml"),
      `config:\n  pgvector-stack:target: kubernetes\n  pgvector-stack:node:\n    memory: 16Gi\n  pgvector-stack:superuserPassword:\n    secure: ${plantedCiphertext}\n`,
    );
    fs.writeFileSync(path.join(root, "Pulumi.bad.yaml"), stackFile({ target: "docker", fail: true }));
    recorded = await recordStacks(["dev", "leaky", "perf", "sec"], { root });
  }, 300_000);

  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  const stack = (name: string) => {
    if (recorded.status !== "recorded") throw new Error(recorded.message);
    const s = recorded.stacks.get(name);
    if (!s) throw new Error(`no ${name}`);
    return s;
  };

  it("records every resource with type, name and sorted inputs, in name order", () => {
    const dev = stack("dev");
    expect(dev.resources.map((r) => `${r.type} ${r.name}`)).toEqual([
      "pgvector-stack:test:Database dev",
      "kubernetes:core/v1:ConfigMap dev-config",
      "kubernetes:core/v1:Secret dev-credentials",
      "random:index/randomPassword:RandomPassword dev-password",
    ]);
    const config = dev.resources[1];
    expect(config.inputs).toEqual({ apiVersion: "v1", data: redactionMarker, kind: "ConfigMap", metadata: { labels: { alpha: "a", zeta: "z" }, namespace: "ns" } });
    expect(Object.keys((config.inputs.metadata as { labels: object }).labels)).toEqual(["alpha", "zeta"]);
    expect(dev.resources[3].inputs).toEqual({ length: 32, special: false });
    expect(dev.yaml).toMatch(/^# Resources the Pulumi program \(index\.ts\) registers for stack "dev" \(target kubernetes\)/);
    expect(dev.leaks).toEqual([]);
  });

  it("writes secrets (Pulumi secret outputs, generated passwords, secure config) only as the redaction marker", () => {
    for (const name of ["dev", "leaky", "sec"]) {
      const { yaml } = stack(name);
      expect(yaml).not.toContain(plantedPlaintext);
      expect(yaml).not.toContain(plantedCiphertext);
      expect(yaml).not.toContain("PLANTED");
      expect(yaml).not.toContain(fakeSecretPrefix);
    }
    expect(stack("sec").resources.find((r) => r.name === "sec-credentials")?.inputs.stringData).toBe(redactionMarker);
    // The secure value is a secret for the program: no password is generated for it.
    expect(stack("sec").resources.some((r) => r.type.startsWith("random:"))).toBe(false);
  });

  it("redacts a secret that reached a non-secret input and reports where", () => {
    const leaky = stack("leaky");
    expect(leaky.leaks).toEqual(["kubernetes:core/v1:ConfigMap leaky-leak data.url"]);
    expect(leaky.resources.find((r) => r.name === "leaky-leak")?.inputs.data).toEqual({ url: `postgresql://app:${redactionMarker}@db/app` });
  });

  it("does not run the program for target local: an empty list that says why", () => {
    const perf = stack("perf");
    expect(perf.resources).toEqual([]);
    expect(perf.yaml).toContain("# Target local registers no resources");
    expect(perf.yaml.endsWith("\n[]\n")).toBe(true);
  });

  it("passes the stack file's config as Pulumi would: namespaced keys, objects as JSON, secure values marked secret", () => {
    expect(programConfig("sec", root)).toEqual({
      config: { "pgvector-stack:target": "kubernetes", "pgvector-stack:node": '{"memory":"16Gi"}', "pgvector-stack:superuserPassword": redactionMarker },
      secretKeys: ["pgvector-stack:superuserPassword"],
      project: "pgvector-stack",
      target: "kubernetes",
    });
  });

  it("fails loudly, naming the stack and the program's error, when the program throws", async () => {
    await expect(recordStacks(["bad"], { root })).rejects.toThrow(/failed under mocks for stack "bad" \(exit 1\); no resources\.yaml was written:[\s\S]*boom from the program/);
  }, 120_000);

  it("says index.ts is not found, and only then skips the step", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-offline-empty-"));
    try {
      expect(await recordStacks(["dev"], { root: empty })).toEqual({ status: "no-program", message: "index.ts not found: resources.yaml is not rendered" });
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});
