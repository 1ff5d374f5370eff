/**
 * `pgstack render` with the real Pulumi program (index.ts) under mocks, for every stack: the same commit gives the
 * same bytes; a change to one stack's memory changes only that stack's files (resources included); a stack with
 * `secure:` values renders no secret anywhere. Slow (the program runs once per stack in a child process), so the
 * renders are shared by the tests below.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeSecretPrefix } from "../../cli/offline-program";
import { renderStackFiles, writeStacks, type RenderAll } from "../../cli/render";
import { readTree } from "../../cli/drift";
import { listStacks, projectRoot } from "../../cli/stack-file";
import { secretConfigKeys } from "../../configs/spec";
import { compareRendered } from "../../drift/snapshot";

const root = projectRoot();
const hasProgram = fs.existsSync(path.join(root, "index.ts"));
const plantedCiphertext = "v1:PLANTED-SECRET-CIPHERTEXT-4b1e";

function tree(all: RenderAll) {
  return Object.fromEntries(all.stacks.map((s) => [s.stack, s.files]));
}

describe("pgstack render of every stack, program included", () => {
  const stacks = listStacks(root);
  let first: RenderAll;
  let second: RenderAll;
  let changed: RenderAll;
  let otherRoot: string;
  const dirs: string[] = [];

  beforeAll(async () => {
    // A second project root: the same stack files, prod on a 128Gi node, and a stack with a secret for every secret key.
    otherRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-render-test-"));
    fs.copyFileSync(path.join(root, "Pulumi.yaml"), path.join(otherRoot, "Pulumi.yaml"));
    for (const s of stacks) fs.copyFileSync(path.join(root, `Pulumi.${s}.yaml`), path.join(otherRoot, `Pulumi.${s}.yaml`));
    const prod = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
    expect(prod).toMatch(/memory: 64Gi/);
    fs.writeFileSync(path.join(otherRoot, "Pulumi.prod.yaml"), prod.replace("memory: 64Gi", "memory: 128Gi"));
    const secrets = secretConfigKeys.map((k) => `  pgvector-stack:${k}:\n    secure: ${plantedCiphertext}-${k}\n`).join("");
    for (const base of ["dev", "staging"]) {
      fs.writeFileSync(path.join(otherRoot, `Pulumi.${base}secrets.yaml`), fs.readFileSync(path.join(root, `Pulumi.${base}.yaml`), "utf8") + secrets);
    }
    const program = path.join(root, "index.ts");
    [first, second, changed] = await Promise.all([
      renderStackFiles(stacks, root),
      renderStackFiles(stacks, root),
      renderStackFiles(["prod", "staging", "devsecrets", "stagingsecrets"], otherRoot, { program }),
    ]);
  }, 600_000);

  afterAll(() => {
    for (const d of [otherRoot, ...dirs]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it("renders resources.yaml for every stack when index.ts exists", () => {
    expect(first.notes).toEqual(hasProgram ? [] : ["index.ts not found: resources.yaml is not rendered"]);
    for (const s of first.stacks) expect(Object.keys(s.files).includes("resources.yaml")).toBe(hasProgram);
  });

  it("same commit, same bytes: two renders are identical, in memory and on disk", () => {
    expect(tree(second)).toEqual(tree(first));
    const [a, b] = [0, 1].map(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-render-bytes-"));
      dirs.push(dir);
      return dir;
    });
    writeStacks(a, first.stacks, true);
    writeStacks(b, second.stacks, true);
    const onDisk = readTree(a);
    expect(readTree(b)).toEqual(onDisk);
    expect(onDisk).toEqual(tree(first));
    expect(compareRendered(onDisk, readTree(b)).drift).toBe(false);
  });

  it("a change to one stack's node memory changes only that stack's files", () => {
    const base = tree(first);
    const after = tree(changed);
    expect(after.staging).toEqual(base.staging);
    const changedFiles = Object.keys(base.prod).filter((f) => base.prod[f] !== after.prod[f]).sort();
    expect(changedFiles).toEqual(expect.arrayContaining(["memory-plan.yaml", "postgresql.conf"]));
    if (hasProgram) expect(changedFiles).toContain("resources.yaml");
    const drift = compareRendered({ prod: base.prod, staging: base.staging }, { prod: after.prod, staging: after.staging });
    expect(drift.stacks.map((s) => [s.stack, s.change])).toEqual([
      ["prod", "changed"],
      ["staging", "unchanged"],
    ]);
    const settings = drift.stacks[0].files.find((f) => f.file === "postgresql.conf");
    expect(settings).toMatchObject({ kind: "settings", settings: expect.arrayContaining([{ name: "shared_buffers", old: "16GB", new: "32GB" }]) });
  });

  it("no secret appears anywhere in a rendered stack: secure values and generated passwords are markers only", () => {
    for (const stack of ["devsecrets", "stagingsecrets"]) {
      const files = tree(changed)[stack];
      const all = Object.values(files).join("\n");
      expect(all).not.toContain("PLANTED");
      expect(all).not.toContain(fakeSecretPrefix);
      if (hasProgram) expect(files["resources.yaml"]).toContain("[secret]");
    }
    for (const s of [...first.stacks, ...changed.stacks]) expect(s.warnings.filter((w) => w.includes("secret reaches"))).toEqual([]);
  });
});
