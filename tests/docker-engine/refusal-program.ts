/**
 * A program made of resources the engine mocks refuse or fail, run as its own process by engine-mocks.test.ts
 * (`node -r tsx/cjs refusal-program.ts <runLabel> <prefix>`). A failed registration rejects the resource's outputs, and
 * Pulumi lets those rejections go unhandled on purpose (that is how `pulumi up` fails): in a test worker they would
 * be reported as errors of whatever test runs, so here they are collected. Prints one JSON report on stdout.
 */
import * as docker from "@pulumi/docker";
import * as tls from "@pulumi/tls";
import { installEngineMocks } from "./engine-mocks";

export interface RefusalReport {
  /** settled()'s message. */
  readonly failure: string | null;
  /** Resource names whose registration Pulumi itself saw fail (the unhandled rejections). */
  readonly failedRegistrations: string[];
  readonly created: { kind: string; name: string; engineId: string }[];
  readonly kept: string[];
  readonly log: string[];
}

async function main(): Promise<void> {
  const [runLabel, prefix] = process.argv.slice(2);
  if (!runLabel || !prefix) throw new Error("usage: refusal-program.ts <runLabel> <prefix>");
  const failedRegistrations = new Set<string>();
  process.on("unhandledRejection", (error) => {
    const match = /failed to register new resource (\S+) \[/.exec(String((error as Error)?.message ?? error));
    if (match === null) throw error;
    failedRegistrations.add(match[1]);
  });
  const log: string[] = [];
  const run = installEngineMocks({ config: {}, project: "engine-mocks-test", stack: "refusals", runLabel, log: (line) => log.push(line) });
  const base = "debian:trixie-slim";

  new docker.Container("with-mounts", { name: `${prefix}-mounts`, image: base, mounts: [{ target: "/x", type: "tmpfs" }] });
  new docker.Container("wait-without-healthcheck", { name: `${prefix}-wait`, image: base, command: ["sleep", "5"], wait: true });
  new docker.Container("exits-at-once", { name: `${prefix}-exits`, image: base, command: ["sh", "-c", "echo bye; exit 7"] });
  new docker.RemoteImage("missing", { name: "registry.invalid/nothing:here", keepLocally: true });
  new docker.RemoteImage("not-kept", { name: base });
  new docker.Image("pushed", { imageName: `${prefix}:1`, build: { context: "." }, skipPush: false });
  new tls.PrivateKey("p224", { algorithm: "ECDSA" });

  let failure: string | null = null;
  try {
    await run.settled();
  } catch (error) {
    failure = (error as Error).message;
  }
  // Let the rejections of the failed resources' outputs surface.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  const created = run.created.map((o) => ({ kind: o.kind, name: o.name, engineId: o.engineId }));
  const kept = (await run.destroy()).map((k) => k.name);
  await run.removeEverything();
  const report: RefusalReport = { failure, failedRegistrations: [...failedRegistrations].sort(), created, kept, log };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
