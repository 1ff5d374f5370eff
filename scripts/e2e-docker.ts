/**
 * `npm run e2e:docker`: the dev stack brought up on this machine's Docker engine and torn down again.
 *
 * Builds the images (images/, through the program's docker.Image resources), runs the real Pulumi program
 * (program.ts → DockerVectorStack) with every Docker object created on the engine (tests/docker-engine: Pulumi's mocks
 * answering through the Docker Engine API), prints the outputs and the post-deploy hook's report, then removes
 * everything the run created: containers, the network, the volumes (the retained data volume too: this is a test
 * run, not your dev stack). Images stay as build cache unless --remove-images. Starts dockerd when none answers
 * (installing Debian's docker.io first if needed) and stops only a daemon it started.
 */
import { parseArgs } from "node:util";
import { terminalProgress } from "../cli/progress";
import { ensureBaseImage } from "../local/docker/base-image";
import { ensureDockerEngine, type DockerEngine } from "../local/docker/engine";
import type { EngineRun } from "../tests/docker-engine/engine-mocks";
import { removeStaleStack, runDockerStack } from "../tests/docker-engine/stack-run";

const usage = `usage: npm run e2e:docker -- [--stack-file NAME] [--remove-images] [--keep] [--quiet]

Brings the dev stack (Pulumi.dev.yaml) up on this machine's Docker engine as stack "e2e" (objects pgstack-e2e-*,
ports chosen free on 127.0.0.1), prints the outputs and the post-deploy hook's report, and removes what it created.

  --stack-file NAME  the stack file whose config to deploy (Pulumi.NAME.yaml, target docker); default dev
  --remove-images    also remove the images it built (default: kept, as the next run's build cache)
  --keep             leave the stack running (containers, network, volumes) for a look around; remove it later with
                     docker rm -f $(docker ps -aq --filter label=pgvector-stack.engine-run=<label>) and the same for
                     networks and volumes (the label is printed)
  --quiet            do not print each Docker object as it is built, created or waited for (stderr)
  -h, --help         this text

Needs root when no Docker engine answers on /var/run/docker.sock (it then installs and starts dockerd).`;

function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      "stack-file": { type: "string", default: "dev" },
      "remove-images": { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return Promise.resolve(0);
  }
  return e2e(values["stack-file"]!, values["remove-images"]!, values.keep!, !values.quiet!);
}

async function e2e(stackFile: string, removeImages: boolean, keep: boolean, verbose: boolean): Promise<number> {
  const progress = terminalProgress();
  const runLabel = `e2e-docker-${process.pid}`;
  let engine: DockerEngine | undefined;
  let run: EngineRun | undefined;
  let tornDown = false;
  const tearDown = async (): Promise<void> => {
    if (tornDown) return;
    tornDown = true;
    if (run !== undefined && !keep) {
      progress.step(`removing what the run created (label pgvector-stack.engine-run=${runLabel})${removeImages ? ", images too" : ""}`);
      const removed = await run.removeEverything({ keepImages: !removeImages });
      console.error(`removed ${removed.length} Docker objects`);
    }
    // A stack left running needs its engine; otherwise only a daemon this run started is stopped.
    if (keep) return;
    if (engine?.startedHere) progress.step("stopping the dockerd this run started");
    await engine?.stop();
  };
  const interrupted = (signal: NodeJS.Signals): void => {
    console.error(`\n${signal}: tearing down`);
    void tearDown().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  // Pulumi leaves a failed registration's rejections unhandled (that is how `pulumi up` fails), which would end the
  // process before the teardown below: report the first, tear down, exit 1.
  process.on("unhandledRejection", (reason) => {
    console.error(`e2e:docker failed: ${reason instanceof Error ? reason.message : String(reason)}`);
    void tearDown().finally(() => process.exit(1));
  });

  try {
    engine = await ensureDockerEngine(progress);
    const base = await ensureBaseImage(progress, { socketPath: engine.socketPath });
    if (base.built) progress.step(`made ${base.reference} with debootstrap`);
    const stale = await removeStaleStack("e2e");
    if (stale.length > 0) progress.step(`removed ${stale.length} objects an earlier e2e run left (pgstack-e2e-…)`);
    progress.step(`deploying stack file ${stackFile} as stack "e2e" on the engine (images built first; the hook runs to completion, about 2 minutes)`);
    const started = Date.now();
    const deployed = await runDockerStack(
      { stackFile, stack: "e2e", runLabel, log: verbose ? (line) => console.error(`  ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ${line}`) : undefined },
      (r) => (run = r),
    );
    const outputs = deployed.outputs as Record<string, unknown> & { hookReport: { exitCode: number | null; log: string } };
    console.log(`deployed in ${deployed.seconds.toFixed(0)} s: ${run!.created.length} Docker objects (label pgvector-stack.engine-run=${runLabel})`);
    console.log(`endpoints: ${JSON.stringify(outputs.endpoints)}`);
    console.log(`huge pages: ${JSON.stringify(outputs.hugePages)}`);
    console.log(`\n--- post-deploy hook (exit ${outputs.hookReport.exitCode}) ---\n${outputs.hookReport.log}`);
    if (keep) console.log(`\nleft running (--keep): the containers, network and volumes labelled pgvector-stack.engine-run=${runLabel}`);
    return outputs.hookReport.exitCode === 0 ? 0 : 1;
  } catch (error) {
    console.error(`e2e:docker failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await tearDown();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    console.error(usage);
    process.exit(2);
  },
);
