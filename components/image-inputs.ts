/**
 * The files each of this repository's images (images/) is built from, read once: the pinned list, and per image its
 * inputs' sha256 and content-addressed tag (configs/image-packages.ts hashes; this file reads). The one reader of
 * images/: `pulumi up` (components/stack-images.ts), `pgstack images build` and the tests tag with it, so a tag built
 * by hand is the tag `pulumi up` would build. No Pulumi here.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import {
  defaultImageTagPrefix,
  imageInputsSha256,
  imageTag,
  imagesDirectory,
  installScript,
  parseImagePackages,
  pgstackImages,
  type ImageInputFile,
  type ImagePackages,
  type PgstackImage,
} from "../configs/image-packages";
import type { ImageKey } from "../configs/stack-spec";

/** The pgstack image each of the stack's image keys runs. */
export const pgstackImageOf: Readonly<Record<ImageKey, PgstackImage>> = {
  postgres: "postgres",
  pgbouncer: "pgbouncer",
  postgresExporter: "postgres-exporter",
  pgbouncerExporter: "pgbouncer-exporter",
  prometheus: "prometheus",
  nodeExporter: "node-exporter",
  mtail: "mtail",
  node: "node",
};

export interface PgstackImageInputs {
  /** images/packages.txt, parsed. */
  readonly list: ImagePackages;
  /** Per image: its Dockerfile, relative to the project directory (where `pulumi up` runs). */
  readonly dockerfiles: Readonly<Record<PgstackImage, string>>;
  /** Per image: sha256 of its inputs (configs/image-packages.ts imageInputsSha256). */
  readonly sha256: Readonly<Record<PgstackImage, string>>;
}

/** `<prefix><image>:<12 hex digits>`: `pgstack-postgres:…` locally, `<registry>/pgstack-postgres:…` for a push. */
export function pgstackImageTag(inputs: PgstackImageInputs, image: PgstackImage, prefix = defaultImageTagPrefix): string {
  return imageTag(prefix, image, inputs.sha256[image]);
}

/** Every file under `dir`, its path relative to `base` with forward slashes. */
function filesUnder(dir: string, base: string): ImageInputFile[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(full, base);
    return [{ path: path.relative(base, full).split(path.sep).join("/"), content: fs.readFileSync(full) }];
  });
}

/** Reads images/ under `projectDir` (the directory holding Pulumi.yaml). Throws naming the file it cannot read or parse. */
export function readPgstackImageInputs(projectDir: string): PgstackImageInputs {
  const root = path.join(projectDir, imagesDirectory);
  const read = (relative: string): Buffer => {
    try {
      return fs.readFileSync(path.join(root, relative));
    } catch (error) {
      throw new Error(`cannot read ${imagesDirectory}/${relative}, an input of the pgstack images: ${(error as Error).message}`);
    }
  };
  const listText = read("packages.txt");
  const list = parseImagePackages(listText.toString("utf8"), `${imagesDirectory}/packages.txt`);
  // Every Dockerfile copies the whole list (and the script): any change to it changes every image's layers and ID, so
  // it changes every tag too, or one tag would name two different images.
  const shared = [
    { path: installScript, content: read(installScript) },
    { path: "packages.txt", content: listText },
  ];
  const dockerfiles = {} as Record<PgstackImage, string>;
  const sha256 = {} as Record<PgstackImage, string>;
  for (const image of pgstackImages) {
    read(`${image}/Dockerfile`);
    dockerfiles[image] = `${imagesDirectory}/${image}/Dockerfile`;
    sha256[image] = imageInputsSha256(image, [...filesUnder(path.join(root, image), root), ...shared], list);
  }
  return { list, dockerfiles, sha256 };
}
