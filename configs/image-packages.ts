/**
 * The one list of pinned Debian 13 packages (images/packages.txt) as data: which package at which version goes into
 * which image, and into the real-server rig's rootfs (every line). Pure: the caller reads the file (local/ does; this
 * room touches no file system) and hands its text here.
 *
 * Also what the images promise beside their packages: the user each one runs as, and the content hash of an image's
 * inputs that its tag carries, so a changed Dockerfile or pin is a new tag and an unchanged one is the same tag.
 */
import { createHash } from "node:crypto";
import { imageReferenceProblem } from "./docker-exposure";
import { closest } from "./spec-reader";

/** Every image under images/, by its directory name. */
export const pgstackImages = ["postgres", "pgbouncer", "postgres-exporter", "pgbouncer-exporter", "node-exporter", "prometheus", "mtail", "node"] as const;

export type PgstackImage = (typeof pgstackImages)[number];

export function isPgstackImage(name: string): name is PgstackImage {
  return (pgstackImages as readonly string[]).includes(name);
}

/** One line of the list. */
export interface PinnedPackage {
  readonly name: string;
  /** As dpkg prints it (`${Version}`), epoch included: `1:0.10.2-2`. */
  readonly version: string;
  /** The images that install it; empty for a package only the rootfs installs (`-`). */
  readonly images: readonly PgstackImage[];
  /** 1-based line in the file, for messages. */
  readonly line: number;
}

export interface ImagePackages {
  /** In file order. */
  readonly packages: readonly PinnedPackage[];
}

/** Where the list lives, relative to the project root; messages name it. */
/** The images' build context, relative to the project directory: every Dockerfile there is written for it. */
export const imagesDirectory = "images";

export const imagePackagesFile = `${imagesDirectory}/packages.txt`;

/** The install script every Dockerfile copies, relative to images/ (an input of every image). */
export const installScript = "install-packages";

// Debian Policy 5.6.1 (package names) and 5.6.12 (versions: [epoch:]upstream[-revision], upstream starting with a digit).
const packageName = /^[a-z0-9][a-z0-9+.-]+$/;
const debianVersion = /^(?:\d+:)?\d[A-Za-z0-9.+~-]*$/;

/**
 * Parses the list. Blank lines and lines starting with `#` are skipped; every other line is exactly
 * `package version images`. Every problem is reported at once, each with its line number and content, as one Error.
 */
export function parseImagePackages(text: string, source: string = imagePackagesFile): ImagePackages {
  const problems: string[] = [];
  const packages: PinnedPackage[] = [];
  const seen = new Map<string, number>();
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    const content = raw.replace(/\r$/, "").trim();
    if (content === "" || content.startsWith("#")) return;
    const at = `${source} line ${line} "${content}"`;
    const columns = content.split(/\s+/);
    if (columns.length !== 3) {
      problems.push(`${at} has ${columns.length} column${columns.length === 1 ? "" : "s"}; write package, version and images (a comma list of image names, or - for the rootfs only), with comments on lines of their own`);
      return;
    }
    const [name, version, imageList] = columns;
    const lineProblems: string[] = [];
    if (!packageName.test(name)) lineProblems.push(`"${name}" is not a Debian package name (lower-case letters, digits, + - .)`);
    if (!debianVersion.test(version)) lineProblems.push(`"${version}" is not a Debian version ([epoch:]upstream[-revision], as dpkg-query -W prints it)`);
    const images: PgstackImage[] = [];
    if (imageList !== "-") {
      for (const image of imageList.split(",")) {
        if (!isPgstackImage(image)) {
          const guess = closest(image, pgstackImages);
          lineProblems.push(`"${image}" is not an image${guess ? `; did you mean ${guess}?` : ""} (images: ${pgstackImages.join(", ")}, or - alone for the rootfs only)`);
        } else if (images.includes(image)) {
          lineProblems.push(`names the image ${image} twice`);
        } else {
          images.push(image);
        }
      }
    }
    const earlier = seen.get(name);
    if (earlier !== undefined) lineProblems.push(`pins ${name} again (line ${earlier} pins it already); one line per package`);
    if (lineProblems.length > 0) {
      problems.push(`${at}: ${lineProblems.join("; ")}`);
      return;
    }
    seen.set(name, line);
    packages.push({ name, version, images, line });
  });
  if (problems.length > 0) throw new Error(`${source} is not a valid package list:\n  ${problems.join("\n  ")}`);
  if (packages.length === 0) throw new Error(`${source} pins no package; every image and the rootfs need their packages listed there`);
  return { packages };
}

/** The packages one image installs, in file order. */
export function packagesFor(list: ImagePackages, image: PgstackImage): PinnedPackage[] {
  return list.packages.filter((p) => p.images.includes(image));
}

/** What the rootfs installs: every line, images' and rootfs-only alike, in file order. */
export function rootfsPackages(list: ImagePackages): PinnedPackage[] {
  return [...list.packages];
}

/** `name=version`, apt's way of asking for one version (and the images' `pgvector-stack.packages` label). */
export function aptPin(p: Pick<PinnedPackage, "name" | "version">): string {
  return `${p.name}=${p.version}`;
}

/** The user an image runs as (or, for postgres, drops to), created in its Dockerfile with these fixed ids. */
export interface ImageUser {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** Why this user and these ids. */
  readonly reason: string;
}

/**
 * Each image's user. Fixed ids, because files outlive containers: a data volume, a log volume or a Kubernetes
 * security context made for one uid must still fit the next build of the image.
 */
export const imageUsers: Readonly<Record<PgstackImage, ImageUser>> = {
  postgres: {
    user: "postgres", uid: 999, gid: 999,
    reason: "owns PGDATA; 999 as in the upstream postgres image and the Kubernetes pod's runAsUser, so existing volumes fit (the entrypoint starts as root and drops to it)",
  },
  pgbouncer: {
    user: "postgres", uid: 999, gid: 999,
    reason: "Debian's PgBouncer runs as postgres; the database's uid writes the log volume mtail reads as that uid",
  },
  "postgres-exporter": {
    user: "nobody", uid: 65534, gid: 65534,
    reason: "as upstream's USER nobody: it only connects over TCP and reads its uploaded files, which are world-readable",
  },
  "pgbouncer-exporter": {
    user: "nobody", uid: 65534, gid: 65534,
    reason: "as upstream's USER nobody: it only connects over TCP and reads its uploaded files, which are world-readable",
  },
  "node-exporter": {
    user: "nobody", uid: 65534, gid: 65534,
    reason: "as upstream's USER nobody: /proc, /sys and the read-only data volume's statfs need no owner",
  },
  prometheus: {
    user: "nobody", uid: 65534, gid: 65534,
    reason: "as upstream's USER nobody: it writes only its TSDB in /prometheus, which the image gives to nobody",
  },
  mtail: {
    user: "postgres", uid: 999, gid: 999,
    reason: "reads PostgreSQL's log files (mode 0600) and PgBouncer's, both written by postgres 999 (the Docker component's postgresOwner)",
  },
  node: {
    user: "node", uid: 1000, gid: 1000,
    reason: "1000 as in the upstream node image and the Kubernetes hook's runAsUser; the Docker component runs the canary and the hook as node",
  },
};

/** A file that goes into an image's build, its path relative to images/ (the build context). */
export interface ImageInputFile {
  readonly path: string;
  readonly content: string | Uint8Array;
}

/**
 * sha256 (hex) of everything that goes into an image's build, given the files by their contents (the caller passes
 * every file the Dockerfile copies: its directory, the install script and the whole list, which every Dockerfile
 * copies, so any change to the list changes every image's layers and therefore every tag), and its own pins by name
 * and version. Deterministic: files in path order, each length-prefixed, so no two different sets of inputs hash
 * alike. The base image (debian:trixie-slim) is not an input: it is a name, made locally or pulled.
 */
export function imageInputsSha256(image: PgstackImage, files: readonly ImageInputFile[], list: ImagePackages): string {
  const hash = createHash("sha256");
  hash.update(`pgvector-stack image ${image}\n`);
  const paths = new Set<string>();
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    if (paths.has(file.path)) throw new Error(`the inputs of image ${image} name ${file.path} twice`);
    paths.add(file.path);
    const bytes = typeof file.content === "string" ? Buffer.from(file.content, "utf8") : file.content;
    hash.update(`file ${file.path} ${bytes.byteLength}\n`);
    hash.update(bytes);
    hash.update("\n");
  }
  for (const p of packagesFor(list, image)) hash.update(`package ${aptPin(p)}\n`);
  return hash.digest("hex");
}

/** The default repository prefix of the images `pgstack images build` tags: `pgstack-postgres:<hash>`. */
export const defaultImageTagPrefix = "pgstack-";

/**
 * The content-addressed tag of an image: `<prefix><image>:<first 12 hex digits of its inputs' sha256>`, as Docker
 * shortens image ids (48 bits: no two versions of one image in this repository's history will collide). Throws when
 * the prefix does not make a Docker reference.
 */
export function imageTag(prefix: string, image: PgstackImage, inputsSha256: string): string {
  if (!/^[a-f0-9]{64}$/.test(inputsSha256)) throw new Error(`"${inputsSha256}" is not a sha256 in hex; pass imageInputsSha256's result`);
  const reference = `${prefix}${image}:${inputsSha256.slice(0, 12)}`;
  const problem = imageReferenceProblem(reference);
  if (problem !== null) throw new Error(`the tag prefix "${prefix}" makes the image reference ${reference}, which ${problem}; use a prefix such as ${defaultImageTagPrefix} or registry.example:5000/team/`);
  return reference;
}

/** The labels `pgstack images build` adds to the Dockerfile's own: the pins it installed and the hash its tag is made of. */
export function buildLabels(image: PgstackImage, list: ImagePackages, inputsSha256: string): Record<string, string> {
  return {
    "pgvector-stack.image": image,
    "pgvector-stack.packages": packagesFor(list, image).map(aptPin).join(" "),
    "pgvector-stack.inputs-sha256": inputsSha256,
  };
}
