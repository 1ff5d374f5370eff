/**
 * Builds the images under images/ with the docker CLI. Their tags and labels come from the caller
 * (components/image-inputs.ts reads images/ and hashes each image's inputs).
 */
import { spawn } from "node:child_process";
import * as path from "node:path";
import { imagesDirectory, type PgstackImage } from "../../configs/image-packages";
import type { Progress } from "../../configs/progress";
import { defaultDockerSocket, dockerRequest } from "./engine";

/** images/ in the project: the build context of every image. */
function imagesDir(): string {
  return path.resolve(__dirname, "..", "..", imagesDirectory);
}

export interface BuiltImage {
  readonly image: PgstackImage;
  readonly tag: string;
  /** The engine's image id (sha256:…). */
  readonly id: string;
  /** Uncompressed size, as `docker images` shows it. */
  readonly sizeBytes: number;
  readonly seconds: number;
}

export interface BuildImageOptions {
  /** The engine's socket (DOCKER_HOST for the CLI). Defaults to defaultDockerSocket. */
  readonly socketPath?: string;
  /** Labels added to the Dockerfile's (configs/image-packages.ts buildLabels, a test's own). Defaults to none. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** Output lines kept for the error message of a failed build. */
const KEPT_LINES = 40;

/**
 * `docker build -f images/<image>/Dockerfile -t <tag> images`, with the packages and inputs-hash labels. Progress
 * follows the build's steps (the classic builder's "Step 3/9", BuildKit's "[3/9]"); a failed build throws with the
 * last lines it printed (install-packages says there which pin the mirror does not serve).
 */
export async function buildImage(image: PgstackImage, tag: string, progress: Progress, opts: BuildImageOptions = {}): Promise<BuiltImage> {
  const dir = imagesDir();
  const labels = opts.labels ?? {};
  const socketPath = opts.socketPath ?? defaultDockerSocket;
  const args = [
    "build",
    // A failed step's container would otherwise stay behind (the classic builder keeps it for debugging).
    "--force-rm",
    "-f", path.join(dir, image, "Dockerfile"),
    "-t", tag,
    ...Object.entries(labels).flatMap(([key, value]) => ["--label", `${key}=${value}`]),
    dir,
  ];
  const started = Date.now();
  progress.step(`building ${tag} (images/${image}/Dockerfile)`);
  const kept: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn("docker", args, {
      env: { ...process.env, DOCKER_HOST: `unix://${socketPath}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let partial = "";
    const onData = (chunk: Buffer): void => {
      partial += chunk.toString("utf8");
      const lines = partial.split(/\r?\n/);
      partial = lines.pop() ?? "";
      for (const line of lines) {
        kept.push(line);
        if (kept.length > KEPT_LINES) kept.shift();
        const step = /^Step (\d+)\/(\d+) : (.*)$/.exec(line) ?? /\[(?:[\w-]+ )?(\d+)\/(\d+)\] (.*)$/.exec(line);
        if (step) progress.advance((Number(step[1]) - 1) / Number(step[2]), `${image}: ${step[3].slice(0, 80)}`);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (error) => reject(new Error(`could not run the docker CLI to build ${tag}: ${error.message}`)));
    child.on("close", (exit) => {
      if (partial !== "") kept.push(partial);
      resolve(exit);
    });
  });
  if (code !== 0) {
    throw new Error(`docker ${args.join(" ")} failed (exit ${code}); last lines:\n${kept.join("\n")}`);
  }
  progress.advance(1, `${image}: built`);
  const response = await dockerRequest("GET", `/images/${encodeURIComponent(tag)}/json`, { socketPath });
  if (response.status !== 200) throw new Error(`docker build reported success, but the engine has no ${tag} (HTTP ${response.status})`);
  const inspect = JSON.parse(response.body.toString("utf8")) as { Id: string; Size: number };
  return { image, tag, id: inspect.Id, sizeBytes: inspect.Size, seconds: (Date.now() - started) / 1000 };
}
