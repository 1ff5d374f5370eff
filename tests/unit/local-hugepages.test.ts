/**
 * Huge page bookkeeping against fake /proc files: the decision and its words, exact reservation by difference, a
 * kernel that grants fewer pages, two clusters giving back only their own, and the lock.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  describeHugePages,
  giveBackHugePages,
  hugePagesIntent,
  parseMeminfo,
  reserveHugePages,
  withHugePagesLock,
  type HugePagesPool,
} from "../../local/hugepages";

const MiB = 1024 * 1024;

function meminfo(total: number, free: number, rsvd = 0, pageKb = 2048): string {
  return [
    "MemTotal:       24683620 kB",
    "AnonHugePages:     59392 kB",
    `HugePages_Total:   ${total}`,
    `HugePages_Free:    ${free}`,
    `HugePages_Rsvd:    ${rsvd}`,
    "HugePages_Surp:        0",
    `Hugepagesize:       ${pageKb} kB`,
    "",
  ].join("\n");
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-hp-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A fake kernel: grants at most `maxPool` pages; `usedByOthers` of the pool are mapped by other processes. */
function kernel(initial: number, opts: { maxPool?: number; usedByOthers?: number } = {}): HugePagesPool & { nr: number } {
  const fake = {
    nr: initial,
    readNr: () => fake.nr,
    writeNr: (pages: number) => {
      fake.nr = Math.min(pages, opts.maxPool ?? Infinity);
    },
    meminfo: () => parseMeminfo(meminfo(fake.nr, Math.max(0, fake.nr - (opts.usedByOthers ?? 0)))),
    lockFile: path.join(dir, "lock"),
  };
  return fake;
}

describe("hugePagesIntent", () => {
  const base = { setting: "on" as const, pages: 281, disabled: false, uid: 0, hostPageBytes: 2 * MiB };
  it.each([
    ["root, 2 MiB pages, stack on", base, { reserve: true, pages: 281 }],
    ["stack says off", { ...base, setting: "off" as const, pages: 0 }, { reserve: false, reason: "the stack sets postgres.hugePages: off" }],
    ["--no-huge-pages", { ...base, disabled: true }, { reserve: false, reason: "turned off with --no-huge-pages" }],
    ["not root", { ...base, uid: 1000 }, { reserve: false, reason: "reserving 281 pages needs root (writing /proc/sys/vm/nr_hugepages); running as uid 1000" }],
    ["1 GiB default pages", { ...base, hostPageBytes: 1024 * MiB }, { reserve: false, reason: "this host's default huge page size is 1 GiB; the plan counts 2 MiB pages" }],
    ["no huge page support", { ...base, hostPageBytes: undefined }, { reserve: false, reason: "this kernel has no huge page support (no HugePages lines in /proc/meminfo)" }],
  ])("%s", (_, input, expected) => {
    expect(hugePagesIntent(input)).toMatchObject(expected);
  });
});

describe("describeHugePages", () => {
  it("says plainly when huge pages are not used, and why", () => {
    expect(
      describeHugePages({ used: false, requested: 3113, reserved: 0, reason: "only 812 of 3113 pages could be reserved", serverStatus: "off", serverPages: 3110 }),
    ).toBe("not used — only 812 of 3113 pages could be reserved");
  });
  it("says how many pages were reserved and what PostgreSQL reports when they are", () => {
    expect(describeHugePages({ used: true, requested: 281, reserved: 281, reason: null, serverStatus: "on", serverPages: 280 })).toBe(
      "on — 281 pages (562 MiB) reserved for this cluster; PostgreSQL needs 280 (huge_pages_status = on)",
    );
  });
});

describe("parseMeminfo", () => {
  it("reads the pool and the page size", () => {
    expect(parseMeminfo(meminfo(10, 7, 2))).toEqual({ total: 10, free: 7, reserved: 2, surplus: 0, pageBytes: 2 * MiB });
  });
  it("names the missing line on a kernel without huge pages", () => {
    expect(() => parseMeminfo("MemTotal: 1 kB\n")).toThrow(/no HugePages_Total line/);
  });
});

describe("reserveHugePages / giveBackHugePages", () => {
  it("adds exactly the pages asked for on top of those already reserved, and records the count before returning", async () => {
    const pool = kernel(100);
    const recorded: number[] = [];
    const r = await reserveHugePages(281, (n) => recorded.push(n), pool);
    expect(r).toEqual({ ok: true, requested: 281, added: 281, before: 100, available: 381 });
    expect(recorded).toEqual([281]);
    expect(pool.nr).toBe(381);
    await giveBackHugePages(281, pool);
    expect(pool.nr).toBe(100);
  });

  it("gives back at once and says how many there were when the kernel grants fewer", async () => {
    const pool = kernel(0, { maxPool: 812 });
    const recorded: number[] = [];
    const r = await reserveHugePages(3113, (n) => recorded.push(n), pool);
    expect(r).toMatchObject({ ok: false, added: 0, reason: "only 812 of 3113 pages could be reserved" });
    expect(recorded).toEqual([812, 0]);
    expect(pool.nr).toBe(0);
  });

  it("refuses when the pages exist but others hold them (HugePages_Free short)", async () => {
    const pool = kernel(0, { usedByOthers: 200 });
    const r = await reserveHugePages(281, () => undefined, pool);
    expect(r).toMatchObject({ ok: false, reason: "only 81 of 281 pages could be reserved" });
    expect(pool.nr).toBe(0);
  });

  it("two clusters side by side each give back only their own pages, in any order", async () => {
    const pool = kernel(10);
    await reserveHugePages(281, () => undefined, pool);
    await reserveHugePages(140, () => undefined, pool);
    expect(pool.nr).toBe(431);
    await giveBackHugePages(281, pool); // the first one stops first
    expect(pool.nr).toBe(150);
    await giveBackHugePages(140, pool);
    expect(pool.nr).toBe(10);
  });

  it("says so, and changes nothing, when nr_hugepages cannot be written", async () => {
    const pool = kernel(5);
    pool.writeNr = () => {
      throw Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
    };
    const r = await reserveHugePages(281, () => undefined, pool);
    expect(r).toMatchObject({ ok: false, reason: "/proc/sys/vm/nr_hugepages cannot be written here (EACCES), so no pages could be reserved" });
    expect(pool.nr).toBe(5);
  });
});

describe("withHugePagesLock", () => {
  it("serialises callers and takes over a lock whose owner is gone", async () => {
    const pool = kernel(0);
    fs.writeFileSync(pool.lockFile, JSON.stringify({ pid: 999_999_999, startTime: "1" }));
    const order: string[] = [];
    await Promise.all([
      withHugePagesLock(pool, () => order.push("a")),
      withHugePagesLock(pool, () => order.push("b")),
    ]);
    expect(order.sort()).toEqual(["a", "b"]);
    expect(fs.existsSync(pool.lockFile)).toBe(false);
  });
});
