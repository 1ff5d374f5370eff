/**
 * The images a stack's containers run, one place for both container targets (spec.images, configs/spec.ts):
 * - source pgstack: this repository's images/, built by Pulumi (`docker.Image`) from the pinned Debian 13 packages the
 *   real-server tests run (images/packages.txt). Docker builds on the engine it deploys to and pushes nowhere;
 *   Kubernetes builds on the machine that runs `pulumi up` and pushes to images.registry (credentials: `docker login`,
 *   as for any docker.Image push).
 * - source upstream: the public images, pinned by tag or digest. Docker pulls each once (`docker.RemoteImage`, kept
 *   locally); on Kubernetes the kubelet pulls by reference and nothing is registered here.
 * Each container names its image by digest where one is known (`repoDigest`: the local image ID of an unpushed build,
 * the registry digest of a pushed one; `imageId` of a pulled image), so a rebuilt image replaces the containers that
 * run it and a moved tag cannot change what runs.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ImageKey, ImageReferences, StackSpec } from "../configs/stack-spec";
import { defaultImageTagPrefix, imagesDirectory } from "../configs/image-packages";
import * as path from "node:path";
import { pgstackImageOf, pgstackImageTag, readPgstackImageInputs, type PgstackImageInputs } from "./image-inputs";

/** The project directory: where Pulumi.yaml and images/ are, and where `pulumi up` runs the program. */
const projectDirectory = path.resolve(__dirname, "..");

/** What each container or pod names as its image. */
export type StackImageReferences = Readonly<Record<ImageKey, pulumi.Output<string>>>;

export interface StackImagesArgs {
  /** The stack spec (images, target, stack). Required; no default. */
  readonly spec: StackSpec;
  /** The files each pgstack image is built from. Defaults to this checkout's images/ (image-inputs.ts `readPgstackImageInputs`). */
  readonly inputs?: PgstackImageInputs;
}

export class StackImages extends pulumi.ComponentResource {
  public readonly references: StackImageReferences;

  constructor(name: string, args: StackImagesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pgvector-stack:StackImages", name, {}, opts);
    const { spec } = args;
    const keys = Object.keys(spec.images.upstream).sort() as ImageKey[];
    // Read once, only when building: an upstream stack needs no images/ at all.
    const inputs = spec.images.source === "pgstack" ? (args.inputs ?? readPgstackImageInputs(projectDirectory)) : undefined;
    const reference = (key: ImageKey): pulumi.Output<string> => {
      if (spec.images.source === "upstream") {
        if (spec.target === "kubernetes") return pulumi.output(spec.images.upstream[key]);
        return new docker.RemoteImage(`${name}-${key}`, { name: spec.images.upstream[key], keepLocally: true }, { parent: this }).imageId;
      }
      const registry = spec.images.registry;
      const image = new docker.Image(
        `${name}-${key}`,
        {
          // The tag `pgstack images build` gives the same inputs: `pgstack-<image>:<hash>`, under the registry if any.
          imageName: pgstackImageTag(inputs!, pgstackImageOf[key], registry === null ? undefined : `${registry}/${defaultImageTagPrefix}`),
          // Relative to the project directory, where `pulumi up` runs: the same bytes on every machine. Docker builds
          // for the engine's own platform (the one that runs it); a push is for the cluster's amd64 nodes, whatever
          // the machine that runs `pulumi up`.
          build: {
            context: imagesDirectory,
            dockerfile: inputs!.dockerfiles[pgstackImageOf[key]],
            ...(registry === null ? {} : { platform: "linux/amd64" }),
          },
          // Docker: the engine that builds is the one that runs, there is nothing to push to. Kubernetes: the cluster
          // pulls from images.registry.
          skipPush: registry === null,
        },
        { parent: this },
      );
      return image.repoDigest;
    };
    this.references = Object.fromEntries(keys.map((key) => [key, reference(key)])) as unknown as StackImageReferences;
    this.registerOutputs({ references: this.references });
  }
}

/** The references as one Output of plain strings, for specs built in one piece (the StatefulSet's pod template). */
export function resolvedReferences(references: StackImageReferences): pulumi.Output<ImageReferences> {
  return pulumi.all(references).apply((resolved) => resolved as unknown as ImageReferences);
}
