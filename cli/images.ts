/**
 * `pgstack images build`: the images under images/ built on this host's Docker engine (started here when none
 * answers, and stopped again afterwards), FROM debian:trixie-slim (made here with debootstrap when the engine lacks
 * it), each tagged by the hash of its inputs.
 */
import { buildLabels, defaultImageTagPrefix, isPgstackImage, pgstackImages, type PgstackImage } from "../configs/image-packages";
import { pgstackImageTag, readPgstackImageInputs } from "../components/image-inputs";
import { closest } from "../configs/spec-reader";
import { humanBytes } from "../configs/units";
import { ensureBaseImage } from "../local/docker/base-image";
import { ensureDockerEngine } from "../local/docker/engine";
import { buildImage, type BuiltImage } from "../local/docker/image-build";
import { projectRoot } from "./stack-file";
import { chosenFormat, commandHelp, formatOptions, noPositionals, parseOptions } from "./args";
import type { Command } from "./command";
import { HelpRequested, UsageError, UserFacingError } from "./errors";
import { terminalProgress } from "./progress";

const options = {
  image: {
    type: "string",
    value: "NAME",
    multiple: true,
    default: "all of them",
    help: `build only this image; give it again for more. Images:\n${pgstackImages.join(", ")}`,
  },
  "tag-prefix": {
    type: "string",
    value: "P",
    default: defaultImageTagPrefix,
    help: "tag each image P<image>:<first 12 hex digits of its inputs' sha256>",
  },
  ...formatOptions(["text", "json"], "text: a table; json: one document with each image's tag, id, size and build time"),
} as const;

const help = commandHelp({
  usage: ["pgstack images build [--image NAME]… [--tag-prefix P] [--format text|json]"],
  description: [
    "Builds the images under images/ (docker build -f images/<image>/Dockerfile images), each installing its Debian",
    "packages at the versions images/packages.txt pins. Uses the Docker engine on /var/run/docker.sock, or starts",
    "dockerd (installing Debian's docker.io first when missing; needs root) and stops it afterwards. Makes the base",
    "image debian:trixie-slim with debootstrap when the engine lacks it (no registry needed; needs root).",
    "Prints each image's tag, size and build time; progress goes to stderr.",
  ],
  sections: [
    { title: "options", options },
    { title: "exit status", lines: ["0 every image built, 1 a build failed (the error names the step), 2 usage error"] },
  ],
});

function chosenImages(names: readonly string[] | undefined): PgstackImage[] {
  if (names === undefined) return [...pgstackImages];
  const chosen: PgstackImage[] = [];
  for (const name of names) {
    if (!isPgstackImage(name)) {
      const guess = closest(name, pgstackImages);
      throw new UsageError(`--image ${name} is not an image${guess ? `; did you mean ${guess}?` : ""} (images: ${pgstackImages.join(", ")})`);
    }
    if (!chosen.includes(name)) chosen.push(name);
  }
  return chosen;
}

/** Errors thrown on purpose by local/ (plain Error, a message for people) lose their stack; anything else is a bug. */
function asPeopleError(error: unknown): unknown {
  return error instanceof Error && error.constructor === Error ? new UserFacingError(error.message) : error;
}

async function build(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, options);
  noPositionals(positionals, "images build takes options only");
  const json = chosenFormat(values, ["text", "json"] as const) === "json";
  const images = chosenImages(values.image);
  const prefix = values["tag-prefix"] ?? defaultImageTagPrefix;
  const inputs = readPgstackImageInputs(projectRoot());
  let tags: Map<PgstackImage, string>;
  try {
    tags = new Map(images.map((image) => [image, pgstackImageTag(inputs, image, prefix)]));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }

  const started = Date.now();
  const progress = terminalProgress();
  const built: BuiltImage[] = [];
  let engineStarted = false;
  try {
    const engine = await ensureDockerEngine(progress);
    engineStarted = engine.startedHere;
    try {
      const base = await ensureBaseImage(progress, { socketPath: engine.socketPath });
      if (base.built) progress.step(`made ${base.reference} (${base.id.slice(7, 19)})`);
      for (const image of images) {
        const labels = buildLabels(image, inputs.list, inputs.sha256[image]);
        built.push(await buildImage(image, tags.get(image)!, progress, { socketPath: engine.socketPath, labels }));
      }
    } finally {
      await engine.stop();
    }
  } catch (error) {
    throw asPeopleError(error);
  }
  const seconds = (Date.now() - started) / 1000;

  if (json) {
    console.log(JSON.stringify({ seconds, engineStartedHere: engineStarted, images: built }));
    return 0;
  }
  const width = Math.max(...built.map((b) => b.tag.length));
  console.log(`${"tag".padEnd(width)}  ${"size".padStart(10)}  ${"build".padStart(8)}`);
  for (const b of built) console.log(`${b.tag.padEnd(width)}  ${humanBytes(b.sizeBytes).padStart(10)}  ${`${b.seconds.toFixed(1)} s`.padStart(8)}`);
  console.log(`${built.length} image${built.length === 1 ? "" : "s"} in ${seconds.toFixed(1)} s`);
  return 0;
}

export const imagesCommand: Command = {
  help,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === "-h" || sub === "--help") throw new HelpRequested();
    if (sub === undefined) throw new UsageError("name a subcommand: build");
    if (sub !== "build") {
      throw new UsageError(`unknown subcommand "${sub}"${closest(sub, ["build"]) ? "; did you mean build?" : " (subcommands: build)"}`);
    }
    return build(rest);
  },
};
