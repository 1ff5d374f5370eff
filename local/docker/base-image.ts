/**
 * The base every image is built FROM, `debian:trixie-slim`. Where a registry answers, it is Docker's official image;
 * where none does (this build machine), it is made here the same way in spirit: debootstrap --variant=minbase of
 * Debian 13 from the Debian mirror this host's apt uses, trimmed as the official slim variant is, and imported.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Progress } from "../../configs/progress";
import { debianMirror } from "../runtime/debianMirror";
import { unmountAllUnder, removeTreeWithoutMounts } from "../runtime/mounts";
import { ensureDebootstrap, ROOTFS_SUITE, runDebootstrap } from "../runtime/rootfs";
import { logTail } from "../runtime/processes";
import { defaultDockerSocket, dockerRequest } from "./engine";

/** What every Dockerfile under images/ names in FROM. */
export const baseImage = "debian:trixie-slim";

export interface BaseImage {
  readonly reference: string;
  /** The engine's image id (sha256:…). */
  readonly id: string;
  /** True when this call made it. */
  readonly built: boolean;
}

export interface EnsureBaseImageOptions {
  /** Defaults to baseImage; another name builds the same image under it (a test that must not replace the real one). */
  readonly reference?: string;
  /** Defaults to defaultDockerSocket. */
  readonly socketPath?: string;
}

/**
 * The base image's id, made first when the engine does not have it (GET /images/<ref>/json answers 404). Making it
 * needs root (debootstrap) and the Debian mirror; it takes about a minute.
 */
export async function ensureBaseImage(progress: Progress, opts: EnsureBaseImageOptions = {}): Promise<BaseImage> {
  const reference = opts.reference ?? baseImage;
  const socketPath = opts.socketPath ?? defaultDockerSocket;
  const existing = await imageId(reference, socketPath);
  if (existing !== undefined) return { reference, id: existing, built: false };
  if (process.getuid?.() !== 0) {
    throw new Error(`the Docker engine has no ${reference}, and making it with debootstrap needs root; run as root, or docker pull ${reference} where a registry answers`);
  }
  await ensureDebootstrap(progress);
  const mirror = debianMirror();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-base-image-"));
  const logFile = `${dir}.log`;
  try {
    progress.step(`making ${reference}: debootstrap --variant=minbase ${ROOTFS_SUITE} from ${mirror} (about a minute)`);
    const args = ["--variant=minbase", ROOTFS_SUITE, dir, mirror];
    const code = await runDebootstrap(args, logFile, progress);
    if (code !== 0) throw new Error(`debootstrap ${args.join(" ")} failed (exit ${code}); last lines of ${logFile}:\n${logTail(logFile, 30)}`);
    slim(dir);
    progress.step(`importing ${dir} into the Docker engine as ${reference}`);
    await importTree(dir, reference, mirror, socketPath);
  } finally {
    // debootstrap mounts /proc and /sys in the target while it configures packages; a failed run may leave them.
    await unmountAllUnder(dir).catch(() => undefined);
    removeTreeWithoutMounts(dir);
  }
  fs.rmSync(logFile, { force: true });
  const id = await imageId(reference, socketPath);
  if (id === undefined) throw new Error(`the Docker engine accepted the import, but has no ${reference} afterwards`);
  return { reference, id, built: true };
}

/** The engine's id of an image, or undefined when it has none by that name. */
export async function imageId(reference: string, socketPath = defaultDockerSocket): Promise<string | undefined> {
  const response = await dockerRequest("GET", `/images/${encodeURIComponent(reference)}/json`, { socketPath });
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`GET /images/${reference}/json answered ${response.status}: ${response.body.toString("utf8").trim()}`);
  return (JSON.parse(response.body.toString("utf8")) as { Id: string }).Id;
}

/**
 * What the official slim variant leaves out, removed from the tree and kept out of later installs (dpkg path
 * excludes, as debuerreotype's slimify writes them): package lists and downloaded archives (apt-get update fetches
 * fresh lists in every build), documentation, manuals and message translations. Copyright files and glibc's
 * locale.alias stay.
 */
const dpkgSlimExcludes = [
  "# The slim variant, as Docker's official debian:*-slim images have it (pgvector-stack local/docker/base-image.ts).",
  "path-exclude /usr/share/doc/*",
  "path-include /usr/share/doc/*/copyright",
  "path-exclude /usr/share/man/*",
  "path-exclude /usr/share/groff/*",
  "path-exclude /usr/share/info/*",
  "path-exclude /usr/share/lintian/*",
  "path-exclude /usr/share/linda/*",
  "path-exclude /usr/share/locale/*",
  "path-include /usr/share/locale/locale.alias",
  "",
].join("\n");

function slim(dir: string): void {
  const emptyDir = (relative: string) => {
    const full = path.join(dir, relative);
    if (!fs.existsSync(full)) return;
    for (const name of fs.readdirSync(full)) {
      if (name === "partial" || name === "lock") continue;
      fs.rmSync(path.join(full, name), { recursive: true, force: true });
    }
  };
  emptyDir("var/lib/apt/lists");
  emptyDir("var/cache/apt/archives");
  for (const name of fs.readdirSync(path.join(dir, "var/cache/apt"))) {
    if (name.endsWith(".bin")) fs.rmSync(path.join(dir, "var/cache/apt", name), { force: true });
  }
  for (const relative of ["usr/share/man", "usr/share/info", "usr/share/groff", "usr/share/lintian", "usr/share/linda"]) emptyDir(relative);
  const locale = path.join(dir, "usr/share/locale");
  if (fs.existsSync(locale)) {
    for (const name of fs.readdirSync(locale)) if (name !== "locale.alias") fs.rmSync(path.join(locale, name), { recursive: true, force: true });
  }
  const doc = path.join(dir, "usr/share/doc");
  if (fs.existsSync(doc)) {
    for (const pkg of fs.readdirSync(doc)) {
      const full = path.join(doc, pkg);
      if (!fs.lstatSync(full).isDirectory()) {
        fs.rmSync(full, { force: true });
        continue;
      }
      for (const name of fs.readdirSync(full)) if (name !== "copyright") fs.rmSync(path.join(full, name), { recursive: true, force: true });
    }
  }
  for (const log of ["var/log/dpkg.log", "var/log/bootstrap.log", "var/log/alternatives.log"]) fs.rmSync(path.join(dir, log), { force: true });
  fs.rmSync(path.join(dir, "var/log/apt"), { recursive: true, force: true });
  fs.writeFileSync(path.join(dir, "etc/dpkg/dpkg.cfg.d/docker-slim"), dpkgSlimExcludes);
  // The host's name and resolver: Docker bind-mounts its own over these in every container.
  fs.writeFileSync(path.join(dir, "etc/hostname"), "");
  fs.writeFileSync(path.join(dir, "etc/resolv.conf"), "");
}

/**
 * `tar -c . | POST /images/create?fromSrc=-`: the tree becomes a one-layer image, with the labels that say where it
 * came from and the official image's default command.
 */
function importTree(dir: string, reference: string, mirror: string, socketPath: string): Promise<void> {
  const colon = reference.lastIndexOf(":");
  const [repo, tag] = colon > reference.lastIndexOf("/") ? [reference.slice(0, colon), reference.slice(colon + 1)] : [reference, "latest"];
  const changes = [
    `LABEL org.opencontainers.image.title="${reference}" org.opencontainers.image.description="Debian 13 (${ROOTFS_SUITE}) minbase, made locally by debootstrap and docker import because no registry was reachable" pgvector-stack.base-image.mirror="${mirror}" pgvector-stack.base-image.made-by="pgvector-stack local/docker/base-image.ts"`,
    `CMD ["bash"]`,
  ];
  const query = new URLSearchParams({ fromSrc: "-", repo, tag, message: `debootstrap --variant=minbase ${ROOTFS_SUITE} ${mirror}` });
  for (const change of changes) query.append("changes", change);
  return new Promise((resolve, reject) => {
    // --numeric-owner: the tree's uids are the image's, whatever names this host gives them.
    const tar = spawn("tar", ["--numeric-owner", "-C", dir, "-c", "."], { stdio: ["ignore", "pipe", "pipe"] });
    let tarError = "";
    tar.stderr.on("data", (chunk: Buffer) => (tarError += chunk.toString("utf8")));
    const tarDone = new Promise<number | null>((done) => tar.on("close", done));
    tar.on("error", (error) => reject(new Error(`could not run tar: ${error.message}`)));
    dockerRequest("POST", `/images/create?${query.toString()}`, {
      socketPath,
      body: tar.stdout,
      headers: { "Content-Type": "application/x-tar" },
      timeoutMs: 10 * 60_000,
    })
      .then(async (response) => {
        const tarCode = await tarDone;
        if (tarCode !== 0) throw new Error(`tar -C ${dir} -c . failed (exit ${tarCode}): ${tarError.trim()}`);
        const failure = importFailure(response.status, response.body.toString("utf8"));
        if (failure !== undefined) throw new Error(`importing ${reference} failed: ${failure}`);
        resolve();
      })
      .catch(reject);
  });
}

/** The engine streams JSON messages; a failure is an HTTP error or a message with `error`. */
function importFailure(status: number, body: string): string | undefined {
  if (status !== 200) return `HTTP ${status}: ${body.trim()}`;
  for (const line of body.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const message = JSON.parse(line) as { error?: string };
      if (message.error !== undefined) return message.error;
    } catch {
      return `unexpected answer: ${line}`;
    }
  }
  return undefined;
}
