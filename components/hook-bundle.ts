/**
 * The post-deploy hook's code: the pgstack CLI bundled by esbuild into one CommonJS file that runs on a plain
 * `node` image (a Kubernetes ConfigMap, a Docker upload). It is a build step over cli/, not an import of it.
 * esbuild is deterministic: the same sources give the same bytes, so the bundle's hash changes only with the code.
 */
import * as path from "node:path";
import { buildSync } from "esbuild";

/** A ConfigMap holds at most 1 MiB; keep a margin for the other keys and metadata. */
export const hookBundleLimitBytes = 900 * 1024;

export function buildHookBundle(root = path.resolve(__dirname, "..")): string {
  const result = buildSync({
    entryPoints: [path.join(root, "cli/hook-entry.ts")],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    legalComments: "none",
    write: false,
    absWorkingDir: root,
    // pg's optional native binding is never installed; pg falls back to its JavaScript client.
    external: ["pg-native"],
    logLevel: "silent",
  });
  const text = result.outputFiles[0].text;
  if (Buffer.byteLength(text) > hookBundleLimitBytes) {
    throw new Error(`the hook bundle is ${Buffer.byteLength(text)} bytes, over the ${hookBundleLimitBytes}-byte budget that keeps its ConfigMap under 1 MiB`);
  }
  return text;
}
