/**
 * Huge pages with the real PostgreSQL 17: a 1Gi node (shared_buffers 256MB) gets exactly its computed pages added to
 * the kernel's pool, starts with huge_pages = on and reports huge_pages_status = on, and the pool is back to its
 * previous size afterwards. When the kernel grants fewer pages (a fake pool here, since a real shortfall cannot be
 * forced), the cluster starts with huge_pages = off and says so in plain words — never a quiet fallback.
 * Without root the first case checks the plain-words refusal instead.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSpec, parseClusterFlags } from "../../cli/local";
import { renderStack } from "../../configs/render";
import { bytes } from "../../configs/units";
import { LocalCluster } from "../../local/cluster";
import { describeHugePages, giveBackHugePages, kernelHugePages, type HugePagesPool } from "../../local/hugepages";
import { teardownFromState } from "../../local/teardown";

const isRoot = process.getuid?.() === 0;
const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-hugepages-"));
const spec = clusterSpec(parseClusterFlags(["--memory", "1Gi"]).flags).spec;
// The memory plan does not depend on where the cluster runs: the reference placement's rendering has the cluster's.
const rendered = renderStack(spec);
const clusters: LocalCluster[] = [];
const nrHugePages = (): number => kernelHugePages().readNr();

async function show(url: string, ...settings: string[]): Promise<Record<string, string>> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const rows = (await client.query<{ name: string; value: string }>("SELECT name, current_setting(name) AS value FROM unnest($1::text[]) name", [settings])).rows;
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  } finally {
    await client.end();
  }
}

let before = 0;
beforeAll(() => {
  before = nrHugePages();
});

afterAll(async () => {
  for (const c of clusters) await c.stop().catch(() => undefined);
  for (const c of clusters) await teardownFromState(stateRoot, c.name).catch(() => undefined);
  // Last resort, so a failed test never leaves the host's pool grown: take back whatever is above the start value.
  const extra = nrHugePages() - before;
  if (extra > 0) await giveBackHugePages(extra);
  fs.rmSync(stateRoot, { recursive: true, force: true });
});

describe("huge pages for a local cluster", () => {
  it("the 1Gi plan: shared_buffers 256MB, a little over 256MB of shared memory in 2 MiB pages", () => {
    expect(rendered.memory.sharedBuffersBytes).toBe(256 * bytes.MiB);
    expect(rendered.memory.hugePagesSetting).toBe("on");
    expect(rendered.memory.hugePages).toBeGreaterThan(128);
    expect(rendered.memory.hugePages).toBeLessThan(200);
  });

  it(isRoot ? "as root: reserves exactly the computed pages, runs on them, gives them back" : "not root: says plainly why huge pages are not used", async () => {
    const cluster = new LocalCluster({ name: `hp-${process.pid}`, spec, stateRoot });
    clusters.push(cluster);
    const info = await cluster.start();
    const server = await show(info.superuserUrl, "huge_pages", "huge_pages_status", "shared_memory_size_in_huge_pages");
    if (isRoot) {
      expect(info.hugePages).toMatchObject({ used: true, requested: rendered.memory.hugePages, reserved: rendered.memory.hugePages, serverStatus: "on" });
      expect(nrHugePages()).toBe(before + rendered.memory.hugePages);
      expect(server).toMatchObject({ huge_pages: "on", huge_pages_status: "on" });
      // The estimate covers what PostgreSQL itself asks for (configs/hugepages.ts keeps it at or just above).
      expect(Number(server.shared_memory_size_in_huge_pages)).toBeLessThanOrEqual(rendered.memory.hugePages);
      expect(describeHugePages(info.hugePages)).toMatch(/^on — \d+ pages \(\d+ MiB\) reserved for this cluster; PostgreSQL needs \d+/);
    } else {
      expect(info.hugePages.used).toBe(false);
      expect(describeHugePages(info.hugePages)).toMatch(/^not used — reserving \d+ pages needs root/);
      expect(server).toMatchObject({ huge_pages: "off", huge_pages_status: "off" });
    }
    const report = await cluster.stop();
    expect(report.hugePagesGivenBack).toBe(isRoot ? rendered.memory.hugePages : 0);
    expect(nrHugePages()).toBe(before);
  });

  it("a kernel that grants fewer pages: huge_pages = off on the command line, and the reason in plain words", async () => {
    // A pool that never grows past 100 pages above where it started; the real kernel is not touched.
    let nr = before;
    const stingy: HugePagesPool = {
      readNr: () => nr,
      writeNr: (pages) => {
        nr = Math.min(pages, before + 100);
      },
      meminfo: () => ({ total: nr, free: nr, reserved: 0, surplus: 0, pageBytes: 2 * bytes.MiB }),
      lockFile: path.join(stateRoot, "hugepages.lock"),
    };
    const cluster = new LocalCluster({ name: `hp-${process.pid}-short`, spec, stateRoot, hugePagesPool: stingy });
    clusters.push(cluster);
    const info = await cluster.start();
    const text = describeHugePages(info.hugePages);
    if (isRoot) expect(text).toBe(`not used — only 100 of ${rendered.memory.hugePages} pages could be reserved`);
    else expect(text).toMatch(/^not used — reserving \d+ pages needs root/);
    expect(nr).toBe(before); // what was granted went back at once
    expect(await show(info.superuserUrl, "huge_pages", "huge_pages_status")).toEqual({ huge_pages: "off", huge_pages_status: "off" });
    await cluster.stop();
    expect(nrHugePages()).toBe(before);
  });
});
