/**
 * What the Docker target publishes beyond the Docker host, and the checks on the stack keys that decide it
 * (`docker.publishAddress`, `docker.exposeBeyondLoopback`) and on image references (`images.*`). Plain data; the
 * spec (configs/spec.ts) refuses, the renderer (configs/render.ts) warns.
 */
import type { DockerSpec } from "./stack-spec";

/** A dotted IPv4 address, each octet 0–255; null when it is not one. */
export function ipv4Octets(address: string): number[] | null {
  const parts = address.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p))) return null;
  const octets = parts.map(Number);
  return octets.every((o) => o <= 255) ? octets : null;
}

/** 127.0.0.0/8: reachable from the Docker host only. */
export function isLoopback(address: string): boolean {
  return ipv4Octets(address)?.[0] === 127;
}

/**
 * Why a publish address needs `docker.exposeBeyondLoopback: true`, or null when it does not: any address but
 * loopback puts PostgreSQL and PgBouncer (TLS and SCRAM, but still a login prompt to every network the host is on)
 * and Prometheus (no login at all: its API answers anyone, and shows every target and label) on the host's networks.
 */
export function exposureProblem(docker: Pick<DockerSpec, "publishAddress" | "exposeBeyondLoopback">): string | null {
  if (isLoopback(docker.publishAddress) || docker.exposeBeyondLoopback) return null;
  const where = docker.publishAddress === "0.0.0.0" ? "on every network interface of the Docker host" : `on ${docker.publishAddress}, beyond the Docker host`;
  return (
    `docker.publishAddress ${JSON.stringify(docker.publishAddress)} publishes PostgreSQL, PgBouncer and Prometheus (which has no login) ${where}; ` +
    `keep 127.0.0.1, or set docker.exposeBeyondLoopback: true to say that is meant`
  );
}

/** The warning every render of an exposed Docker stack carries (pulumi up prints it, so do the CLI commands). */
export function exposureWarnings(docker: DockerSpec): string[] {
  if (isLoopback(docker.publishAddress)) return [];
  const { ports } = docker;
  return [
    `docker.publishAddress is ${docker.publishAddress} (docker.exposeBeyondLoopback: true): PostgreSQL :${ports.postgres}, PgBouncer :${ports.pgbouncer} ` +
      `and Prometheus :${ports.prometheus} (no login) are reachable beyond the Docker host; firewall them to the clients that need them`,
  ];
}

/**
 * An image reference pinned by tag, by digest, or both (`name:tag`, `name@sha256:<64 hex>`, `name:tag@sha256:<64 hex>`),
 * the name as Docker writes it (lower case, optional registry host and port). A digest pins the exact image; with a tag
 * beside it Docker pulls by the digest and the tag only tells people which release it is.
 */
// A first component is a registry host when it has a dot or a port, or is localhost (Docker's rule); the rest is lower case.
const imageName = /^(?:(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?::\d+)?\/|[A-Za-z0-9-]+:\d+\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const imageTag = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const sha256Digest = /^sha256:[a-f0-9]{64}$/;

/** Why `reference` is not a pinned image, in words naming the fix; null when it is one. */
export function imageReferenceProblem(reference: string): string | null {
  const at = reference.indexOf("@");
  const nameAndTag = at < 0 ? reference : reference.slice(0, at);
  const digest = at < 0 ? null : reference.slice(at + 1);
  if (digest !== null && !sha256Digest.test(digest)) {
    const hex = digest.startsWith("sha256:") ? digest.slice("sha256:".length) : null;
    const detail =
      hex === null
        ? `it must start with sha256: (the only digest algorithm Docker Hub and the registries pin by)`
        : /[A-F]/.test(hex) && /^[a-fA-F0-9]{64}$/.test(hex)
          ? `write its hex digits in lower case`
          : `sha256: must be followed by exactly 64 hex digits (0-9, a-f), not ${hex.length} character${hex.length === 1 ? "" : "s"}`;
    return `has a malformed digest "${digest}": ${detail}; copy the digest \`docker buildx imagetools inspect <image>\` prints`;
  }
  // The tag follows the last colon after the last slash (a registry's port has a slash after it).
  const colon = nameAndTag.lastIndexOf(":");
  const hasTag = colon > nameAndTag.lastIndexOf("/");
  const name = hasTag ? nameAndTag.slice(0, colon) : nameAndTag;
  const tag = hasTag ? nameAndTag.slice(colon + 1) : null;
  if (!imageName.test(name)) return `is not an image name (lower-case letters, digits and . _ - between slashes, an optional registry host:port/ in front)`;
  if (tag !== null && !imageTag.test(tag)) return `has a malformed tag "${tag}" (letters, digits, . _ -, at most 128)`;
  if (digest === null && tag === null) return `is not pinned: add a tag (name:tag) or a digest (name@sha256:…)`;
  // A moving tag is pinned only by a digest beside it.
  if (digest === null && tag === "latest") return `is pinned to :latest, which moves; name a release tag, or add its digest (name:latest@sha256:…)`;
  return null;
}
