/**
 * The cluster state file: private (0600 in a 0700 directory), exclusive per name, honest about a leftover whose owner
 * died, and teardown deletes only directories that look like the rig's scratch directories.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  checkClusterName,
  ClusterExistsError,
  createState,
  isRunning,
  isScratchDirPath,
  listClusters,
  ownIdentity,
  processIdentity,
  readState,
  removeState,
  stateFilePath,
  updateState,
  type ClusterState,
} from "../../local/state";
import { removeScratchDirs } from "../../local/teardown";

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-state-"));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function state(name: string, owner = ownIdentity()): ClusterState {
  return {
    version: 1,
    name,
    stack: "perf",
    createdAt: "2026-01-01T00:00:00.000Z",
    owner: { ...owner, kind: "local up" },
    phase: "starting",
    steps: [],
    servers: [],
    scratchDirs: [],
    hugePages: null,
    ports: {},
    urls: {},
    passwords: { app: "secret" },
  };
}

describe("state file", () => {
  it("is written 0600 in a 0700 directory and reads back", () => {
    createState(root, state("a"));
    const file = stateFilePath(root, "a");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(readState(root, "a")).toEqual(state("a"));
    updateState(root, "a", (s) => ({ ...s, phase: "up", ports: { postgres: 1 } }));
    expect(readState(root, "a")).toMatchObject({ phase: "up", ports: { postgres: 1 } });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(listClusters(root)).toEqual(["a"]);
  });

  it("refuses a second cluster of the same name while its owner runs", () => {
    createState(root, state("a"));
    expect(() => createState(root, state("a"))).toThrow(ClusterExistsError);
    expect(() => createState(root, state("a"))).toThrow(/already running \(owned by pid \d+, local up\); .*pgstack local down --name a/);
  });

  it("refuses too when the owner died, and says to run local down first", () => {
    createState(root, state("b", { pid: 999_999_999, startTime: "1" }));
    expect(() => createState(root, state("b"))).toThrow(/left behind by pid 999999999, which is gone; .*pgstack local down --name b/);
  });

  it("is gone with its directory after removeState", () => {
    createState(root, state("c"));
    removeState(root, "c");
    expect(fs.existsSync(path.join(root, "c"))).toBe(false);
    expect(readState(root, "c")).toBeUndefined();
    expect(listClusters(root)).toEqual([]);
  });

  it("names the file when it is not a state file", () => {
    fs.mkdirSync(path.join(root, "d"));
    fs.writeFileSync(path.join(root, "d", "state.json"), "{}");
    expect(() => readState(root, "d")).toThrow(/state\.json is not a pgstack cluster state file/);
  });

  it.each(["", "-x", "a/b", "..", "a".repeat(41), "a b"])("refuses the cluster name %j", (name) => {
    expect(() => checkClusterName(name)).toThrow(/must be 1–40 letters/);
  });
});

describe("process identity", () => {
  it("tells this process apart from a pid with another start time", () => {
    const me = ownIdentity();
    expect(isRunning(me)).toBe(true);
    expect(isRunning({ pid: me.pid, startTime: `${me.startTime}0` })).toBe(false);
    expect(isRunning({ pid: 999_999_999, startTime: "1" })).toBe(false);
    expect(isRunning({ pid: 1, startTime: processIdentity(1)?.startTime ?? "" })).toBe(false); // never init
    expect(isRunning({ pid: 0, startTime: "0" })).toBe(false);
  });
});

describe("scratch directories", () => {
  it.each([
    ["/work/main/.cache/debian13-rootfs/tmp/pgstack/perf-postgres-AbC123", true],
    [path.join(os.tmpdir(), "pgstack", "perf-prometheus-x1Y2z3"), true],
    ["/tmp/pgstack/../etc-abcdef", false],
    ["/home/user/data-abcdef", false],
    ["/work/main/.cache/debian13-rootfs/tmp/pgstack", false],
    ["relative/tmp/pgstack/perf-postgres-AbC123", false],
  ])("%s is a rig scratch directory: %s", (dir, expected) => {
    expect(isScratchDirPath(dir)).toBe(expected);
  });

  it("teardown deletes only those", () => {
    const rig = path.join(root, "tmp", "pgstack", "perf-postgres-AbC123");
    const other = path.join(root, "keep-me-abcdef");
    fs.mkdirSync(rig, { recursive: true });
    fs.mkdirSync(other, { recursive: true });
    expect(removeScratchDirs({ scratchDirs: [rig, other] })).toEqual([rig]);
    expect(fs.existsSync(rig)).toBe(false);
    expect(fs.existsSync(other)).toBe(true);
  });
});
