import * as fs from "node:fs";
import { killTree, type ServerProcess } from "./processes";

/**
 * Everything the rig started in this process: servers (in start order) and scratch directories.
 * Mounts are not listed: they are fresh proc/sysfs/tmpfs mounts inside the rootfs, harmless to leave, and
 * `unmountRootfs()` removes them for tools that delete the rootfs.
 */
const servers: ServerProcess[] = [];
const scratchDirs = new Set<string>();
let exitHookInstalled = false;

export function trackServer(server: ServerProcess): void {
  servers.push(server);
  installExitHook();
}

export function untrackServer(server: ServerProcess): void {
  const index = servers.indexOf(server);
  if (index >= 0) servers.splice(index, 1);
}

export function trackScratchDir(hostPath: string): void {
  scratchDirs.add(hostPath);
  installExitHook();
}

export function untrackScratchDir(hostPath: string): void {
  scratchDirs.delete(hostPath);
}

/** Servers still registered, newest last. */
export function runningServers(): readonly ServerProcess[] {
  return [...servers];
}

/**
 * Stops every server the rig started (newest first, so PgBouncer and the exporters go before the
 * PostgreSQL they talk to) and removes every scratch directory. Safe to call more than once; in vitest:
 * `afterAll(stopAll)`. Tries everything before reporting what failed.
 */
export async function stopAll(): Promise<void> {
  const failures: string[] = [];
  for (const server of [...servers].reverse()) {
    try {
      await server.stop();
    } catch (error) {
      failures.push(`${server.name} (pid ${server.pid}): ${(error as Error).message}`);
    }
    untrackServer(server);
  }
  for (const dir of [...scratchDirs]) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (error) {
      failures.push(`scratch directory ${dir}: ${(error as Error).message}`);
    }
    scratchDirs.delete(dir);
  }
  if (failures.length > 0) throw new Error(`stopAll could not clean up everything:\n  ${failures.join("\n  ")}`);
}

/**
 * Servers are detached, so they would outlive a test worker or CLI that exits without stopAll. On exit
 * only synchronous work is possible: SIGKILL each server's process tree, then remove the scratch
 * directories (a SIGKILLed server writes nothing more).
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const server of servers) {
      if (server.exitStatus() !== undefined) continue;
      try {
        killTree(server.pid);
      } catch {
        // Exiting anyway; nothing better to do.
      }
    }
    for (const dir of scratchDirs) {
      try {
        fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // Best effort while exiting; a leftover directory in the rootfs's /tmp is harmless.
      }
    }
  });
}
