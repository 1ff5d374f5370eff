/**
 * PgBouncer's logfile on the container targets: the loop that keeps it under its cap, run here by the host's sh
 * against a scratch file (the PgBouncer image runs busybox sh, the same POSIX commands), and PgBouncer's command
 * that starts the loop and then becomes PgBouncer. tests/real/auth-failures.test.ts runs the loop against a real
 * PgBouncer's logfile.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  containerPgbouncerLog,
  pgbouncerContainerCommand,
  pgbouncerLogCheckSeconds,
  pgbouncerLogMaxBytes,
  pgbouncerLogTrimLoop,
} from "../../configs/pgbouncer-log";
import { placementFor } from "../../configs/placement";
import { renderStack } from "../../configs/render";
import { specFor } from "./spec-fixture";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("the trim loop", () => {
  it("checks every 10 s against a 64 MiB cap by default", () => {
    expect(pgbouncerLogMaxBytes).toBe(64 * 1024 * 1024);
    expect(pgbouncerLogCheckSeconds).toBe(10);
    const loop = pgbouncerLogTrimLoop(containerPgbouncerLog);
    expect(loop).toContain(`size=$(stat -c %s '${containerPgbouncerLog}' 2>/dev/null || echo 0)`);
    expect(loop).toContain(`if [ "$size" -gt ${pgbouncerLogMaxBytes} ]; then`);
    expect(loop).toContain(`: > '${containerPgbouncerLog}'`);
    expect(loop).toContain("sleep 10");
  });

  it.each([
    [{ maxBytes: 0 }, /maxBytes 0/],
    [{ intervalSeconds: 0.5 }, /intervalSeconds 0.5/],
  ])("refuses %j", (opts, message) => {
    expect(() => pgbouncerLogTrimLoop("/x.log", opts)).toThrow(message);
  });

  it("refuses a relative path, and quotes one with a quote in it", () => {
    expect(() => pgbouncerLogTrimLoop("x.log")).toThrow(/absolute path/);
    expect(pgbouncerLogTrimLoop("/it's.log")).toContain(`'/it'\\''s.log'`);
  });

  it("empties the file in place once it is over the cap, leaves it alone below, and waits for it to exist", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgbouncer-log-"));
    dirs.push(dir);
    const file = path.join(dir, "pgbouncer.log");
    const loop = spawn("sh", ["-c", pgbouncerLogTrimLoop(file, { maxBytes: 1000, intervalSeconds: 1 })], { stdio: ["ignore", "ignore", "pipe"] });
    let said = "";
    loop.stderr.on("data", (chunk: Buffer) => (said += chunk.toString()));
    try {
      await new Promise((r) => setTimeout(r, 1_200));
      // Not there yet: nothing said, nothing made.
      expect(said).toBe("");
      expect(fs.existsSync(file)).toBe(false);
      // Below the cap: kept. Appended (as PgBouncer does, O_APPEND) past it: emptied, the same inode.
      const fd = fs.openSync(file, "a");
      fs.writeSync(fd, "x".repeat(900));
      await new Promise((r) => setTimeout(r, 1_500));
      expect(fs.statSync(file).size).toBe(900);
      const inode = fs.statSync(file).ino;
      fs.writeSync(fd, "y".repeat(200));
      const deadline = Date.now() + 5_000;
      while (!said.includes("emptied") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(said).toMatch(new RegExp(`^pgbouncer-log: emptied ${file} at 1100 bytes \\(cap 1000\\)\\n$`));
      // The writer's next line lands at the start of the emptied file, not after a hole.
      fs.writeSync(fd, "next line\n");
      fs.closeSync(fd);
      expect(fs.readFileSync(file, "utf8")).toBe("next line\n");
      expect(fs.statSync(file).ino).toBe(inode);
    } finally {
      loop.kill("SIGTERM");
    }
  });
});

describe("PgBouncer's container command", () => {
  it("starts the loop in the background and execs PgBouncer with the ini, as the container's main process", () => {
    const [sh, c, script] = pgbouncerContainerCommand("/etc/pgbouncer/pgbouncer.ini", containerPgbouncerLog);
    expect([sh, c]).toEqual(["sh", "-c"]);
    expect(script).toBe(`(\n${pgbouncerLogTrimLoop(containerPgbouncerLog)}\n) &\nexec /usr/bin/pgbouncer '/etc/pgbouncer/pgbouncer.ini'\n`);
  });

  it.each(["docker", "kubernetes"] as const)("on %s writes the logfile mtail reads, on the path the placement gives both", (target) => {
    const rendered = renderStack(specFor({ target }), placementFor(target));
    expect(rendered.placement.paths.pgbouncerLog).toBe(containerPgbouncerLog);
    expect(rendered.files["pgbouncer.ini"]).toContain(`\nlogfile = ${containerPgbouncerLog}\n`);
    const logs = rendered.launches.mtail.args.flatMap((a, i, all) => (all[i - 1] === "--logs" ? [a] : []));
    expect(logs).toContain(containerPgbouncerLog);
  });
});
