/**
 * cli/offline-program.ts with small fixture programs: every registered resource recorded (type, name, inputs),
 * sorted; Pulumi secrets and `secure:` config as the redaction marker; a secret that reaches a non-secret input
 * redacted and reported; target local not run; a missing index.ts reported as such; a failing program fails loudly.
 * All stacks of a call share one worker thread: each stack must still get exactly what a run of its own gives it.
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
const counter = require("./counter");
const config = new pulumi.Config("pgvector-stack");
const stack = pulumi.getStack();
if (config.getBoolean("fail")) throw new Error("boom from the program");
if (config.getBoolean("runError")) throw new pulumi.RunError("node.memory is not a size; write 8Gi");
if (config.getBoolean("typed")) require("./typed").explode();
if (config.getBoolean("logError")) pulumi.log.error("the program says something is wrong");
if (config.getBoolean("closure")) module.exports = require("./closure").run();
else {
const node = config.requireObject("node");
class Database extends pulumi.ComponentResource {
  constructor(name, opts) {
    super("pgvector-stack:test:Database", name, {}, opts);
    const password = config.getSecret("superuserPassword") ?? new random.RandomPassword(name + "-password", { length: 32, special: false }, { parent: this }).result;
    new k8s.core.v1.Secret(name + "-credentials", { metadata: { namespace: "ns" }, stringData: { password } }, { parent: this });
    new k8s.core.v1.ConfigMap(name + "-config", { metadata: { namespace: "ns", labels: { zeta: "z", alpha: "a", ordinal: String(counter.next()) } }, data: { memory: node.memory, note: pulumi.secret(${JSON.stringify(plantedPlaintext)}) } }, { parent: this });
    if (config.getBoolean("leak")) {
      new k8s.core.v1.ConfigMap(name + "-leak", { data: { url: pulumi.unsecret(pulumi.output(password)).apply((p) => "postgresql://app:" + p + "@db/app") } }, { parent: this });
    }
    this.registerOutputs({});
  }
}
const db = new Database(stack);
module.exports = { target: config.require("target"), secretOutput: pulumi.secret("x"), db: db.urn };
}
`;
}

/** A program that serialises a function, as dynamic providers do: Pulumi's closure serialiser must work here too. */
function closureModule(): string {
  const mod = (name: string) => JSON.stringify(require.resolve(name));
  return `
const pulumi = require(${mod("@pulumi/pulumi")});
const k8s = require(${mod("@pulumi/kubernetes")});
const answer = 42;
exports.run = () =>
  pulumi.runtime.serializeFunction(() => answer).then((f) => {
    new k8s.core.v1.ConfigMap("closure", { data: { exportName: f.exportName, closure: f.text } });
    return { exportName: f.exportName };
  });
`;
}

/** Module state of the program's own: a fresh process starts it at zero, so must every stack. */
const counterModule = `let created = 0;\nexports.next = () => ++created;\n`;

/** TypeScript whose compiled lines differ from its own (types, comments, blank lines): the throw is on line 9. */
const typedModule = `// A module the program loads only for the "typed" stack.

interface Plan {
  readonly memory: string;
}

export function explode(plan: Plan = { memory: "8Gi" }): never {
  // The line below is line 9 of this file.
  throw new TypeError(\`cannot size \${plan.memory}\`);
}
`;

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
    fs.writeFileSync(path.join(root, "counter.js"), counterModule);
    fs.writeFileSync(path.join(root, "typed.ts"), typedModule);
    fs.writeFileSync(path.join(root, "closure.js"), closureModule());
    fs.writeFileSync(path.join(root, "Pulumi.dev.yaml"), stackFile({ target: "kubernetes", node: { memory: "8Gi", cpus: 4 } }));
    fs.writeFileSync(path.join(root, "Pulumi.leaky.yaml"), stackFile({ target: "kubernetes", node: { memory: "8Gi" }, leak: true }));
    fs.writeFileSync(path.join(root, "Pulumi.perf.yaml"), stackFile({ target: "local", node: { memory: "auto" }, fail: true }));
    fs.writeFileSync(
      path.join(root, "Pulumi.sec.yaml"),
      `config:\n  pgvector-stack:target: kubernetes\n  pgvector-stack:node:\n    memory: 16Gi\n  pgvector-stack:superuserPassword:\n    secure: ${plantedCiphertext}\n`,
    );
    // A component that un-secrets a configured password: the leak must be seen, not hidden behind a marker-like value.
    fs.writeFileSync(
      path.join(root, "Pulumi.secleak.yaml"),
      `config:\n  pgvector-stack:target: kubernetes\n  pgvector-stack:node:\n    memory: 16Gi\n  pgvector-stack:leak: true\n  pgvector-stack:superuserPassword:\n    secure: ${plantedCiphertext}\n`,
    );
    fs.writeFileSync(path.join(root, "Pulumi.bad.yaml"), stackFile({ target: "docker", fail: true }));
    fs.writeFileSync(path.join(root, "Pulumi.badconfig.yaml"), stackFile({ target: "docker", runError: true }));
    fs.writeFileSync(path.join(root, "Pulumi.typed.yaml"), stackFile({ target: "docker", typed: true }));
    fs.writeFileSync(path.join(root, "Pulumi.logs.yaml"), stackFile({ target: "docker", node: { memory: "8Gi" }, logError: true }));
    fs.writeFileSync(path.join(root, "Pulumi.closure.yaml"), stackFile({ target: "kubernetes", closure: true }));
    recorded = await recordStacks(["dev", "leaky", "perf", "sec", "secleak"], { root });
  }, 300_000);

  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  const stack = (name: string, from = recorded) => {
    if (from.status !== "recorded") throw new Error(from.message);
    const s = from.stacks.get(name);
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
    expect(config.inputs).toEqual({
      apiVersion: "v1",
      data: redactionMarker,
      kind: "ConfigMap",
      metadata: { labels: { alpha: "a", ordinal: "1", zeta: "z" }, namespace: "ns" },
    });
    expect(Object.keys((config.inputs.metadata as { labels: object }).labels)).toEqual(["alpha", "ordinal", "zeta"]);
    expect(dev.resources[3].inputs).toEqual({ length: 32, special: false });
    expect(dev.yaml).toMatch(/^# Resources the Pulumi program \(index\.ts\) registers for stack "dev" \(target kubernetes\)/);
    expect(dev.leaks).toEqual([]);
  });

  it("gives every stack of one call the bytes a call of its own gives it, in any order", async () => {
    // Stacks after the first run the program again from scratch: its own modules start afresh (ordinal 1, not 2 or 3).
    for (const name of ["leaky", "sec"]) {
      expect(stack(name).resources.find((r) => r.name === `${name}-config`)?.inputs.metadata).toMatchObject({ labels: { ordinal: "1" } });
    }
    const reversed = await recordStacks(["sec", "leaky", "dev"], { root });
    for (const name of ["dev", "leaky", "sec"]) {
      const alone = await recordStacks([name], { root });
      expect(stack(name, alone).yaml).toBe(stack(name).yaml);
      expect(stack(name, alone).leaks).toEqual(stack(name).leaks);
      expect(stack(name, reversed).yaml).toBe(stack(name).yaml);
    }
  }, 300_000);

  it("writes secrets (Pulumi secret outputs, generated passwords, secure config) only as the redaction marker", () => {
    for (const name of ["dev", "leaky", "sec", "secleak"]) {
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

  it("reports a configured (secure:) secret that reached a non-secret input, as it does a generated one", () => {
    const secleak = stack("secleak");
    expect(secleak.leaks).toEqual(["kubernetes:core/v1:ConfigMap secleak-leak data.url"]);
    expect(secleak.resources.find((r) => r.name === "secleak-leak")?.inputs.data).toEqual({ url: `postgresql://app:${redactionMarker}@db/app` });
    // The configured password, not a generated one, is what leaked.
    expect(secleak.resources.some((r) => r.type.startsWith("random:"))).toBe(false);
    expect(secleak.resources.find((r) => r.name === "secleak-credentials")?.inputs.stringData).toBe(redactionMarker);
  });

  it("does not run the program for target local: an empty list that says why", () => {
    const perf = stack("perf");
    expect(perf.resources).toEqual([]);
    expect(perf.yaml).toContain("# Target local registers no resources");
    expect(perf.yaml.endsWith("\n[]\n")).toBe(true);
  });

  it("passes the stack file's config as Pulumi would: namespaced keys, objects as JSON, secure values as fakes marked secret", () => {
    const fake = `${fakeSecretPrefix}config-superuserPassword`;
    expect(programConfig("sec", root)).toEqual({
      config: { "pgvector-stack:target": "kubernetes", "pgvector-stack:node": '{"memory":"16Gi"}', "pgvector-stack:superuserPassword": fake },
      secretKeys: ["pgvector-stack:superuserPassword"],
      secretValues: [fake],
      project: "pgvector-stack",
      target: "kubernetes",
    });
  });

  it("gives every secure value a fake of its own, nested ones and other namespaces' too, that survives percent-encoding", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-offline-config-"));
    try {
      fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: pgvector-stack\nruntime: nodejs\n");
      fs.writeFileSync(
        path.join(dir, "Pulumi.multi.yaml"),
        [
          "config:",
          "  pgvector-stack:appPassword:",
          "    secure: v1:a",
          "  pgvector-stack:statsPassword:",
          "    secure: v1:b",
          "  pgvector-stack:extra:",
          "    tokens:",
          "      - secure: v1:c",
          "    plain: x",
          "  other:apiKey:",
          "    secure: v1:d",
          "",
        ].join("\n"),
      );
      const config = programConfig("multi", dir);
      const fake = (name: string) => `${fakeSecretPrefix}config-${name}`;
      expect(config.secretValues).toEqual([fake("appPassword"), fake("extra.tokens.0"), fake("other_apiKey"), fake("statsPassword")]);
      expect(config.secretKeys).toEqual(["other:apiKey", "pgvector-stack:appPassword", "pgvector-stack:extra", "pgvector-stack:statsPassword"]);
      expect(config.config["pgvector-stack:extra"]).toBe(JSON.stringify({ tokens: [fake("extra.tokens.0")], plain: "x" }));
      for (const value of config.secretValues) expect(encodeURIComponent(value)).toBe(value);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails loudly, naming the stack and the program's error, when the program throws", async () => {
    await expect(recordStacks(["bad"], { root })).rejects.toThrow(/failed under mocks for stack "bad"; no resources\.yaml was written:[\s\S]*boom from the program/);
  }, 120_000);

  it("fails the whole call when one stack of several fails: nothing is returned for the others", async () => {
    await expect(recordStacks(["dev", "bad", "sec"], { root })).rejects.toThrow(/for stack "bad"[\s\S]*boom from the program/);
  }, 120_000);

  it("shows a pulumi.RunError as its message alone, as Pulumi does", async () => {
    const error = await recordStacks(["badconfig"], { root }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/for stack "badconfig"; no resources\.yaml was written:\nnode\.memory is not a size; write 8Gi$/);
  }, 120_000);

  it("points a failure's stack trace at the TypeScript line that threw", async () => {
    const error = await recordStacks(["typed"], { root }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain("TypeError: cannot size 8Gi");
    expect(error?.message).toMatch(/typed\.ts:9:\d+/);
  }, 120_000);

  it("fails a stack whose program logs an error, with what it logged", async () => {
    await expect(recordStacks(["logs"], { root })).rejects.toThrow(/for stack "logs"[\s\S]*the program says something is wrong[\s\S]*the program logged errors/);
  }, 120_000);

  it("serialises a function for a program that does (dynamic providers), in the worker thread too", async () => {
    const closure = stack("closure", await recordStacks(["closure"], { root }));
    const data = closure.resources.find((r) => r.name === "closure")?.inputs.data as { closure: string; exportName: string };
    expect(data.exportName).toBe("handler");
    expect(data.closure).toContain("exports.handler = __f0;");
    expect(data.closure).toContain("with({ answer: 42, this: undefined, arguments: undefined })");
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
