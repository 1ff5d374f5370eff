/**
 * The gate for what the Docker target publishes (docker.publishAddress, docker.exposeBeyondLoopback) and for pinned
 * images (images.*, by tag, digest or both), and the warning an exposed stack carries on every render.
 */
import { describe, expect, it } from "vitest";
import { exposureWarnings, imageReferenceProblem, isLoopback } from "../../configs/docker-exposure";
import { renderStack } from "../../configs/render";
import { defaultImages, parseStackSpec, SpecError } from "../../configs/spec";

type Config = Record<string, unknown>;
const docker = (extra: Config = {}): Config => ({ target: "docker", node: { memory: "8Gi", cpus: 4, storage: "ssd" }, ...extra });
const digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

function errorsOf(config: Config): string[] {
  try {
    parseStackSpec("dev", config);
  } catch (e) {
    if (e instanceof SpecError) return e.issues.map((i) => `${i.key}: ${i.message}`);
    throw e;
  }
  return [];
}

describe("docker.publishAddress beyond loopback: only with docker.exposeBeyondLoopback, and then with a warning", () => {
  it.each([
    ["0.0.0.0", "on every network interface of the Docker host"],
    ["192.168.1.5", "on 192.168.1.5, beyond the Docker host"],
    ["10.0.0.1", "on 10.0.0.1, beyond the Docker host"],
  ])("refuses %s without the opt-in, naming the key, the value and the way out", (address, where) => {
    expect(errorsOf(docker({ docker: { publishAddress: address } }))).toEqual([
      `docker.publishAddress: docker.publishAddress "${address}" publishes PostgreSQL, PgBouncer and Prometheus (which has no login) ${where}; ` +
        `keep 127.0.0.1, or set docker.exposeBeyondLoopback: true to say that is meant`,
    ]);
  });

  it("accepts it with docker.exposeBeyondLoopback: true, and every render of the stack warns", () => {
    const spec = parseStackSpec("dev", docker({ docker: { publishAddress: "0.0.0.0", exposeBeyondLoopback: true, ports: { postgres: 15432 } } }));
    expect(spec.docker).toMatchObject({ publishAddress: "0.0.0.0", exposeBeyondLoopback: true });
    const warning =
      "docker.publishAddress is 0.0.0.0 (docker.exposeBeyondLoopback: true): PostgreSQL :15432, PgBouncer :6432 and Prometheus :9090 (no login) " +
      "are reachable beyond the Docker host; firewall them to the clients that need them";
    // Rendered.warnings is what `pulumi up` logs (program.ts) and every pgstack command prints.
    expect(renderStack(spec).warnings).toContain(warning);
    expect(exposureWarnings(spec.docker)).toEqual([warning]);
  });

  it("needs neither for loopback, the default", () => {
    for (const address of [undefined, "127.0.0.1", "127.0.0.2"]) {
      const spec = parseStackSpec("dev", docker(address === undefined ? {} : { docker: { publishAddress: address } }));
      expect(spec.docker.exposeBeyondLoopback).toBe(false);
      expect(renderStack(spec).warnings.filter((w) => w.includes("publishAddress")), String(address)).toEqual([]);
    }
    expect(parseStackSpec("dev", docker()).docker.publishAddress).toBe("127.0.0.1");
  });

  it("warns only where Docker publishes: a Kubernetes stack's docker keys deploy nothing", () => {
    const spec = parseStackSpec("k", { target: "kubernetes", node: { memory: "32Gi", cpus: 8 }, docker: { publishAddress: "0.0.0.0", exposeBeyondLoopback: true } });
    expect(renderStack(spec).warnings.filter((w) => w.includes("publishAddress"))).toEqual([]);
  });

  it.each([
    [{ publishAddress: "300.1.1.1" }, 'docker.publishAddress: docker.publishAddress "300.1.1.1" is not an IPv4 address: each part must be 0-255'],
    [{ publishAddress: "localhost" }, 'docker.publishAddress: docker.publishAddress is "localhost"; it must be an IPv4 address such as 127.0.0.1'],
    [{ exposeBeyondLoopback: "yes" }, 'docker.exposeBeyondLoopback: docker.exposeBeyondLoopback is "yes"; it must be true or false'],
    [{ exposeBeyondLoopbak: true }, "docker.exposeBeyondLoopbak: unknown key docker.exposeBeyondLoopbak; did you mean docker.exposeBeyondLoopback?"],
  ])("refuses %j by name", (keys, message) => {
    expect(errorsOf(docker({ docker: keys })).map((e) => e.replace(/ \(known: .*\)$/, ""))).toEqual([message]);
  });

  it("knows loopback", () => {
    expect(["127.0.0.1", "127.255.0.9"].map(isLoopback)).toEqual([true, true]);
    expect(["0.0.0.0", "128.0.0.1", "10.127.0.1", "127.0.0.256"].map(isLoopback)).toEqual([false, false, false, false]);
  });
});

describe("images: pinned by tag, by digest, or both; a digest is kept as written", () => {
  it.each([
    ["by tag", "pgvector/pgvector:0.8.0-pg17"],
    ["by digest", `pgvector/pgvector@sha256:${digest}`],
    ["by tag and digest", `pgvector/pgvector:0.8.0-pg17@sha256:${digest}`],
    ["a registry host", `quay.io/prometheuscommunity/postgres-exporter:v0.17.1@sha256:${digest}`],
    ["a registry with a port", `registry.local:5000/team/pgvector:0.8.0-pg17`],
    ["a moving tag held by its digest", `node:latest@sha256:${digest}`],
  ])("accepts an image %s and keeps it byte for byte", (_, image) => {
    expect(imageReferenceProblem(image)).toBeNull();
    const spec = parseStackSpec("dev", docker({ images: { source: "upstream", postgres: image, node: image } }));
    expect(spec.images.upstream.postgres).toBe(image);
    expect(spec.images.upstream.node).toBe(image);
  });

  it.each([
    ["a short digest", `pgvector/pgvector:0.8.0-pg17@sha256:abc123`, 'has a malformed digest "sha256:abc123": sha256: must be followed by exactly 64 hex digits (0-9, a-f), not 6 characters'],
    ["a digest of 65", `pgvector/pgvector@sha256:${digest}0`, "not 65 characters"],
    ["upper-case hex", `pgvector/pgvector@sha256:${digest.toUpperCase()}`, "write its hex digits in lower case"],
    ["another algorithm", `pgvector/pgvector@sha512:${digest}`, 'has a malformed digest "sha512:' + digest + '": it must start with sha256:'],
    ["a digest without its algorithm", `pgvector/pgvector@${digest}`, "it must start with sha256:"],
    ["no digest after @", `pgvector/pgvector:0.8.0-pg17@`, 'has a malformed digest "": it must start with sha256:'],
    ["no tag or digest", "pgvector/pgvector", "is not pinned: add a tag (name:tag) or a digest (name@sha256:…)"],
    [":latest alone", "node:latest", "is pinned to :latest, which moves"],
    ["an empty tag", "node:", 'has a malformed tag ""'],
    ["upper case in the name", "PGVector/pgvector:0.8.0", "is not an image name"],
  ])("refuses %s, naming key, value and the fix", (_, image, detail) => {
    const [error, ...rest] = errorsOf(docker({ images: { source: "upstream", pgbouncer: image } }));
    expect(rest).toEqual([]);
    expect(error).toContain(`images.pgbouncer: images.pgbouncer is ${JSON.stringify(image)}; it must be an image pinned by tag or digest`);
    expect(error).toContain(detail);
  });

  it("refuses a non-string by key", () => {
    expect(errorsOf(docker({ images: { source: "upstream", node: 20 } }))).toEqual([
      "images.node: images.node is 20; it must be an image pinned by tag or digest (name:tag, name@sha256:…, name:tag@sha256:…), never bare or :latest; it is not a string",
    ]);
  });

  it("runs the hook and the canary on an exact Node release by default, not the moving node:20 line", () => {
    expect(defaultImages.node).toMatch(/^node:\d+\.\d+\.\d+-bookworm-slim$/);
    // The Node line the tests here run the bundled CLI with (20.20.2 on the build machine when it was pinned).
    expect(defaultImages.node.startsWith(`node:${process.versions.node.split(".")[0]}.`)).toBe(true);
    for (const [key, image] of Object.entries(defaultImages)) expect(imageReferenceProblem(image), key).toBeNull();
  });
});

describe("images.source: this repository's images by default on Docker, upstream on Kubernetes unless a registry is given", () => {
  const kubernetes = (extra: Config = {}): Config => ({ target: "kubernetes", node: { memory: "32Gi", cpus: 8, storage: "ssd" }, ...extra });

  it("defaults to pgstack on Docker (nothing to push) and upstream on Kubernetes (the cluster pulls from a registry)", () => {
    expect(parseStackSpec("dev", docker()).images).toMatchObject({ source: "pgstack", registry: null });
    expect(parseStackSpec("prod", kubernetes()).images).toMatchObject({ source: "upstream", registry: null });
    expect(parseStackSpec("prod", kubernetes({ images: { source: "pgstack", registry: "registry.example.com/team" } })).images).toMatchObject({
      source: "pgstack",
      registry: "registry.example.com/team",
    });
  });

  it("refuses an upstream reference that would be ignored, a registry where nothing is pushed, and pgstack on Kubernetes without one", () => {
    expect(errorsOf(docker({ images: { postgres: "pgvector/pgvector:0.8.0-pg17" } }))).toEqual([
      'images.postgres: images.postgres is "pgvector/pgvector:0.8.0-pg17", but images.source is pgstack, which runs this repository\'s images built from images/: set images.source: upstream to run "pgvector/pgvector:0.8.0-pg17", or remove images.postgres',
    ]);
    expect(errorsOf(docker({ images: { registry: "registry.example.com/team" } }))).toEqual([
      'images.registry: images.registry is "registry.example.com/team", but target is docker: only Kubernetes stacks push images (Docker builds them on the engine it deploys to); remove images.registry',
    ]);
    expect(errorsOf(kubernetes({ images: { registry: "registry.example.com/team" } }))).toEqual([
      'images.registry: images.registry is "registry.example.com/team", but images.source is upstream, which pushes nothing: set images.source: pgstack to build and push there, or remove images.registry',
    ]);
    expect(errorsOf(kubernetes({ images: { source: "pgstack" } }))).toEqual([
      "images.source: images.source is pgstack on a Kubernetes stack, but images.registry is not set: the cluster pulls the images from a registry; set images.registry (e.g. registry.example.com/team) or images.source: upstream",
    ]);
    expect(errorsOf(kubernetes({ images: { source: "pgstack", registry: "https://registry.example.com" } }))).toEqual([
      'images.registry: images.registry is "https://registry.example.com"; it must be a registry repository prefix such as registry.example.com/team or localhost:5000 (lower case, no scheme, no tag)',
    ]);
    expect(errorsOf(docker({ images: { source: "ours" } }))).toEqual(['images.source: images.source is "ours"; allowed: pgstack, upstream']);
    expect(errorsOf(docker({ images: { sorce: "upstream" } }))[0]).toContain("unknown key images.sorce; did you mean images.source?");
  });

  it("admits pgaudit with this repository's postgres image, which ships it, and refuses it with the upstream default, which does not", () => {
    expect(parseStackSpec("dev", docker({ postgres: { audit: { enabled: true } } })).postgres.audit.enabled).toBe(true);
    expect(errorsOf(docker({ images: { source: "upstream" }, postgres: { audit: { enabled: true } } }))[0]).toContain("which does not ship pgaudit");
  });
});
