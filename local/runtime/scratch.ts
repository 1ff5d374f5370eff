import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { trackScratchDir, untrackScratchDir } from "./registry";

/**
 * A directory the programs can see. For the chroot runtime it lives inside the rootfs, so the same
 * directory has two names: `hostPath` for this process (fs.writeFileSync…) and `path` for the program's
 * arguments and config files. Owned by the postgres user, which every server runs as.
 */
export interface ScratchDir {
  /** Where this process reads and writes it. */
  readonly hostPath: string;
  /** Where programs of the runtime see it; put this in arguments and config files. */
  readonly path: string;
  /**
   * Writes `text` to `name` (may contain subdirectories) owned by the postgres user, mode 0600 unless
   * given, and returns the path programs see it at.
   */
  writeFile(name: string, text: string, mode?: number): string;
  /** Host path of an entry, for reading what a program wrote. */
  hostPathOf(name: string): string;
  /** Path of an entry as programs see it. */
  pathOf(name: string): string;
  /** Deletes it now rather than at stopAll(). */
  remove(): void;
}

export interface ScratchOwner {
  readonly uid: number;
  readonly gid: number;
}

/**
 * Creates `<root>/tmp/pgstack/<label>-XXXXXX` (for native, under the host's temp dir). Kept short on
 * purpose: PostgreSQL and PgBouncer put their Unix sockets in here, and socket paths are limited to 107 bytes.
 */
export function createScratchDir(rootDir: string, label: string, owner: ScratchOwner): ScratchDir {
  const inRootBase = rootDir === "/" ? path.join(os.tmpdir(), "pgstack") : "/tmp/pgstack";
  const hostBase = path.join(rootDir, inRootBase);
  fs.mkdirSync(hostBase, { recursive: true, mode: 0o755 });
  const hostPath = fs.mkdtempSync(path.join(hostBase, `${label.replace(/[^A-Za-z0-9_-]/g, "-")}-`));
  const inRootPath = path.join(inRootBase, path.basename(hostPath));
  fs.chownSync(hostPath, owner.uid, owner.gid);
  fs.chmodSync(hostPath, 0o700);
  trackScratchDir(hostPath);

  const entry = (name: string): string => {
    const normalized = path.normalize(name);
    if (path.isAbsolute(normalized) || normalized.startsWith("..")) {
      throw new Error(`scratch file name "${name}" must be relative and stay inside the scratch directory`);
    }
    return normalized;
  };
  return {
    hostPath,
    path: inRootPath,
    hostPathOf: (name) => path.join(hostPath, entry(name)),
    pathOf: (name) => path.join(inRootPath, entry(name)),
    writeFile(name, text, mode = 0o600) {
      const relative = entry(name);
      let dir = hostPath;
      for (const part of path.dirname(relative).split(path.sep).filter((p) => p !== ".")) {
        dir = path.join(dir, part);
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        fs.chownSync(dir, owner.uid, owner.gid);
      }
      const file = path.join(hostPath, relative);
      fs.writeFileSync(file, text, { mode });
      fs.chmodSync(file, mode); // writeFileSync keeps the mode of a file that already existed
      fs.chownSync(file, owner.uid, owner.gid);
      return path.join(inRootPath, relative);
    },
    remove() {
      fs.rmSync(hostPath, { recursive: true, force: true });
      untrackScratchDir(hostPath);
    },
  };
}
