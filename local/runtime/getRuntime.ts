import * as fs from "node:fs";
import * as path from "node:path";
import { silentProgress, type Progress } from "../../configs/progress";
import { detectInRootfs, detectNative, isComplete, type Detection } from "./detectPrograms";
import { ensureRootfs } from "./rootfs";
import { createRuntime, hostProgram, type Runtime } from "./runtime";
import type { ProgramName, VersionedThing } from "./programs";

export interface GetRuntimeOptions {
  /** Reports the rootfs build and why natives were not used. Defaults to silent. */
  readonly progress?: Progress;
}

/**
 * Set PGSTACK_RUNTIME=chroot to use the rootfs even when native programs would do, or =native to fail
 * instead of falling back to it. Unset: natives when ALL are present at the right versions, else chroot.
 */
export const RUNTIME_ENV = "PGSTACK_RUNTIME";

let memo: Promise<Runtime> | undefined;

/**
 * The runtime for this process, found (and the rootfs built) on the first call and shared afterwards.
 * A failed attempt is not remembered, so a later call tries again.
 */
export function getRuntime(opts: GetRuntimeOptions = {}): Promise<Runtime> {
  if (memo === undefined) {
    memo = chooseRuntime(opts.progress ?? silentProgress);
    memo.catch(() => {
      memo = undefined;
    });
  }
  return memo;
}

async function chooseRuntime(progress: Progress): Promise<Runtime> {
  const forced = process.env[RUNTIME_ENV];
  if (forced !== undefined && forced !== "" && forced !== "native" && forced !== "chroot") {
    throw new Error(`${RUNTIME_ENV}="${forced}" is not a runtime kind; write native or chroot, or leave it unset`);
  }

  let reason: string;
  if (forced === "chroot") {
    reason = `${RUNTIME_ENV}=chroot`;
  } else {
    const native = await detectNative();
    if (isComplete(native)) {
      return createRuntime({ kind: "native", rootDir: "/", reason: "all programs installed natively", ...complete(native) });
    }
    reason = `native programs not usable: ${native.problems.join("; ")}`;
    if (forced === "native") throw new Error(`${RUNTIME_ENV}=native but ${reason}`);
  }

  progress.step(`local runtime: using the Debian 13 rootfs under chroot (${reason})`);
  if (process.getuid?.() !== 0) {
    throw new Error(`${reason}; the Debian 13 rootfs fallback needs root (debootstrap, mount, chroot)`);
  }
  const rootDir = await ensureRootfs(progress);
  const inRootfs = await detectInRootfs(rootDir, hostProgram("chroot"));
  if (!isComplete(inRootfs)) {
    throw new Error(
      `the Debian 13 rootfs at ${rootDir} does not have what the stack needs: ${inRootfs.problems.join("; ")}. ` +
        `Debian may have moved a package to another version; delete the rootfs with removeRootfs() to rebuild it, ` +
        `or update local/runtime/programs.ts`,
    );
  }
  return createRuntime({ kind: "chroot", rootDir: fs.realpathSync(path.resolve(rootDir)), reason, ...complete(inRootfs) });
}

/** Narrows a detection without problems to complete records. */
function complete(detection: Detection) {
  if (detection.postgresUser === undefined) throw new Error("postgres user missing from a complete detection");
  return {
    paths: detection.paths as Record<ProgramName, string>,
    versions: detection.versions as Record<VersionedThing, string>,
    postgresUser: detection.postgresUser,
  };
}
