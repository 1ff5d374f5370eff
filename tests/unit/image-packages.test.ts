/**
 * The one list of pinned Debian packages (images/packages.txt): its parser, row by row; the committed list itself
 * (it parses, every image installs something, the rootfs installs exactly its union); the users the images promise
 * and the uids the Kubernetes and Docker targets assume; each Dockerfile against the list and the user table; the
 * inputs hash behind the images' content-addressed tags. The images themselves are built and run in
 * tests/real/images.test.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { postgresOwner } from "../../components/docker/layout";
import { nodeUid, postgresUid } from "../../components/kubernetes/layout";
import {
  aptPin,
  imageInputsSha256,
  imageTag,
  imageUsers,
  packagesFor,
  parseImagePackages,
  pgstackImages,
  rootfsPackages,
  type ImageInputFile,
} from "../../configs/image-packages";
import { readPgstackImageInputs } from "../../components/image-inputs";
import { debootstrapArgs, parseDpkgVersions, pinMismatches, rootfsPins } from "../../local/runtime/rootfs";

const root = path.join(__dirname, "../..");
const imagesDir = path.join(root, "images");
const committed = fs.readFileSync(path.join(imagesDir, "packages.txt"), "utf8");

describe("parseImagePackages", () => {
  it("reads package, version and images, skipping comments and blank lines", () => {
    const list = parseImagePackages(
      ["# a comment", "", "postgresql-17   17.12-0+deb13u1  postgres", "  # indented comment", "prometheus-pgbouncer-exporter 1:0.10.2-2 pgbouncer-exporter,node\r", "pgbench-tools 1.0-1 -"].join("\n"),
    );
    expect(list.packages).toEqual([
      { name: "postgresql-17", version: "17.12-0+deb13u1", images: ["postgres"], line: 3 },
      { name: "prometheus-pgbouncer-exporter", version: "1:0.10.2-2", images: ["pgbouncer-exporter", "node"], line: 5 },
      { name: "pgbench-tools", version: "1.0-1", images: [], line: 6 },
    ]);
  });

  it.each([
    ["two columns", "postgresql-17 17.12-0+deb13u1", 'packages.txt line 1 "postgresql-17 17.12-0+deb13u1" has 2 columns; write package, version and images'],
    ["a trailing comment", "pgbouncer 1.24.1-1 pgbouncer # pooler", 'line 1 "pgbouncer 1.24.1-1 pgbouncer # pooler" has 5 columns'],
    ["an upper-case name", "PgBouncer 1.24.1-1 pgbouncer", '"PgBouncer" is not a Debian package name'],
    ["a version without a digit first", "pgbouncer v1.24.1 pgbouncer", '"v1.24.1" is not a Debian version'],
    ["an `=` pin instead of columns", "pgbouncer=1.24.1-1 1.24.1-1 pgbouncer", '"pgbouncer=1.24.1-1" is not a Debian package name'],
    ["a misspelt image", "pgbouncer 1.24.1-1 pgbouncr", '"pgbouncr" is not an image; did you mean pgbouncer?'],
    ["an image named twice", "pgbouncer 1.24.1-1 pgbouncer,pgbouncer", "names the image pgbouncer twice"],
    ["- among images", "pgbouncer 1.24.1-1 pgbouncer,-", '"-" is not an image'],
  ])("refuses %s, naming the line and its content", (_case, line, message) => {
    expect(() => parseImagePackages(`${line}\n`)).toThrow(message);
  });

  it("names the line number of a problem further down, and every problem at once", () => {
    const text = ["# list", "pgbouncer 1.24.1-1 pgbouncer", "mtail 3.0.9 mtail extra", "pgbouncer 1.24.2-1 pgbouncer"].join("\n");
    let message = "";
    try {
      parseImagePackages(text);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('images/packages.txt line 3 "mtail 3.0.9 mtail extra" has 4 columns');
    expect(message).toContain('images/packages.txt line 4 "pgbouncer 1.24.2-1 pgbouncer": pins pgbouncer again (line 2 pins it already)');
  });

  it("refuses a list without a package", () => {
    expect(() => parseImagePackages("# nothing here\n\n")).toThrow("pins no package");
  });

  it("names the file it was given in its messages", () => {
    expect(() => parseImagePackages("x", "/tmp/list.txt")).toThrow('/tmp/list.txt line 1 "x" has 1 column;');
  });
});

describe("the committed images/packages.txt", () => {
  const list = parseImagePackages(committed);

  it("parses", () => {
    expect(list.packages.length).toBeGreaterThan(0);
  });

  it.each(pgstackImages)("gives the %s image at least one package", (image) => {
    expect(packagesFor(list, image).length).toBeGreaterThan(0);
  });

  it("pins each image's main program (what tests/real/images.test.ts checks running)", () => {
    const main: Record<(typeof pgstackImages)[number], string> = {
      postgres: "postgresql-17",
      pgbouncer: "pgbouncer",
      "postgres-exporter": "prometheus-postgres-exporter",
      "pgbouncer-exporter": "prometheus-pgbouncer-exporter",
      "node-exporter": "prometheus-node-exporter",
      prometheus: "prometheus",
      mtail: "mtail",
      node: "nodejs",
    };
    for (const image of pgstackImages) expect(packagesFor(list, image).map((p) => p.name), image).toContain(main[image]);
    expect(packagesFor(list, "postgres").map((p) => p.name)).toEqual(expect.arrayContaining(["postgresql-17-pgvector", "postgresql-17-pgaudit", "pgbackrest"]));
  });

  it("is what the rootfs installs: every line, at its version, and debootstrap is asked for exactly those names", () => {
    const pins = rootfsPins();
    expect(pins.map(aptPin)).toEqual(rootfsPackages(list).map(aptPin));
    const include = debootstrapArgs(pins, "/tmp/rootfs", "http://deb.debian.org/debian").find((a) => a.startsWith("--include="));
    expect(include?.slice("--include=".length).split(",").sort()).toEqual(list.packages.map((p) => p.name).sort());
  });

  it("is what local/docker reads for the builds", () => {
    expect(readPgstackImageInputs(root).list.packages).toEqual(list.packages);
  });
});

describe("the rootfs's version check", () => {
  const pins = parseImagePackages("postgresql-17 17.12-0+deb13u1 postgres\nprometheus-pgbouncer-exporter 1:0.10.2-2 pgbouncer-exporter\nmtail 3.0.9-1+b7 mtail\n").packages;
  const mirror = "http://deb.debian.org/debian";

  it("reads dpkg-query's lines", () => {
    expect(parseDpkgVersions("postgresql-17 17.12-0+deb13u1\nprometheus-pgbouncer-exporter 1:0.10.2-2\n\n")).toEqual(
      new Map([
        ["postgresql-17", "17.12-0+deb13u1"],
        ["prometheus-pgbouncer-exporter", "1:0.10.2-2"],
      ]),
    );
  });

  it("accepts the pinned versions", () => {
    const installed = new Map(pins.map((p) => [p.name, p.version]));
    expect(pinMismatches(pins, installed, mirror)).toEqual([]);
  });

  it("says what the mirror serves, what the list pins and what to do", () => {
    const installed = new Map([
      ["postgresql-17", "17.13-0+deb13u1"],
      ["prometheus-pgbouncer-exporter", "1:0.10.2-2"],
    ]);
    expect(pinMismatches(pins, installed, mirror)).toEqual([
      "the mirror http://deb.debian.org/debian serves postgresql-17 17.13-0+deb13u1; images/packages.txt pins 17.12-0+deb13u1 (line 1): update the pin, which rebuilds the rootfs and the images",
      "debootstrap from http://deb.debian.org/debian did not install mtail (images/packages.txt pins 3.0.9-1+b7, line 3)",
    ]);
  });
});

describe("imageUsers", () => {
  it("uses the uids the Kubernetes and Docker targets assume", () => {
    expect(imageUsers.postgres.uid).toBe(postgresUid);
    expect(imageUsers.pgbouncer.uid).toBe(postgresUid);
    expect(imageUsers.node.uid).toBe(nodeUid);
    expect(`${imageUsers.mtail.uid}:${imageUsers.mtail.gid}`).toBe(postgresOwner);
    for (const image of ["postgres-exporter", "pgbouncer-exporter", "node-exporter", "prometheus"] as const) {
      expect(imageUsers[image], image).toMatchObject({ user: "nobody", uid: 65534, gid: 65534 });
    }
  });

  it("gives a reason for each", () => {
    for (const image of pgstackImages) expect(imageUsers[image].reason.length, image).toBeGreaterThan(20);
  });
});

/** A Dockerfile's instructions, continuation lines joined and comments dropped. */
function instructions(dockerfile: string): string[] {
  return dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

describe.each(pgstackImages)("images/%s/Dockerfile", (image) => {
  const text = fs.readFileSync(path.join(imagesDir, image, "Dockerfile"), "utf8");
  const steps = instructions(text);
  const user = imageUsers[image];
  const installAt = steps.findIndex((s) => s.startsWith("RUN ") && s.includes(`install-packages ${image}`));

  it("starts FROM debian:trixie-slim and installs its lines of packages.txt with install-packages", () => {
    expect(steps[0]).toBe("FROM debian:trixie-slim");
    expect(steps).toContain("COPY packages.txt install-packages /usr/local/share/pgstack/");
    expect(installAt).toBeGreaterThan(0);
    // No version anywhere but packages.txt: a pin in a Dockerfile would be a second list.
    for (const p of parseImagePackages(committed).packages) expect(text, p.name).not.toContain(p.version);
  });

  it("carries the OCI title, description and source labels", () => {
    const labels = steps.filter((s) => s.startsWith("LABEL ")).join(" ");
    for (const key of ["org.opencontainers.image.title", "org.opencontainers.image.description", "org.opencontainers.image.source"]) {
      expect(labels, key).toContain(`${key}=`);
    }
  });

  it("creates its user with the fixed uid and gid before installing packages, and runs as it", () => {
    if (user.user === "nobody") {
      // The base image's own nobody 65534:65534: nothing to create.
      expect(steps.some((s) => /useradd|groupadd/.test(s))).toBe(false);
    } else {
      const createdAt = steps.findIndex((s) => s.includes(`groupadd`) && s.includes(`--gid ${user.gid} ${user.user}`) && s.includes(`useradd`) && s.includes(`--uid ${user.uid}`));
      expect(createdAt, "the RUN creating the user").toBeGreaterThan(0);
      expect(createdAt).toBeLessThan(installAt);
    }
    const runsAs = steps.filter((s) => s.startsWith("USER ")).pop();
    // postgres starts as root: its entrypoint makes PGDATA the postgres user's, then drops to it.
    expect(runsAs).toBe(image === "postgres" ? undefined : `USER ${user.user}`);
  });
});

describe("imageInputsSha256 and imageTag", () => {
  const list = parseImagePackages("pgbouncer 1.24.1-1 pgbouncer\nmtail 3.0.9-1 mtail\n");
  const files: ImageInputFile[] = [
    { path: "pgbouncer/Dockerfile", content: "FROM debian:trixie-slim\n" },
    { path: "install-packages", content: "#!/bin/sh\n" },
  ];
  const base = imageInputsSha256("pgbouncer", files, list);

  it("is a sha256, the same for the same inputs in any order", () => {
    expect(base).toMatch(/^[a-f0-9]{64}$/);
    expect(imageInputsSha256("pgbouncer", [...files].reverse(), list)).toBe(base);
  });

  it("changes with a file, a file's name, the image's own pin or the image", () => {
    expect(imageInputsSha256("pgbouncer", [files[0], { path: "install-packages", content: "#!/bin/sh -e\n" }], list)).not.toBe(base);
    expect(imageInputsSha256("pgbouncer", [files[0], { path: "install-packages2", content: "#!/bin/sh\n" }], list)).not.toBe(base);
    expect(imageInputsSha256("pgbouncer", files, parseImagePackages("pgbouncer 1.24.1-2 pgbouncer\nmtail 3.0.9-1 mtail\n"))).not.toBe(base);
    expect(imageInputsSha256("mtail", files, list)).not.toBe(base);
  });

  it("does not change with a comment or another image's pin", () => {
    expect(imageInputsSha256("pgbouncer", files, parseImagePackages("# bump mtail\npgbouncer 1.24.1-1 pgbouncer\nmtail 3.0.10-1 mtail\n"))).toBe(base);
  });

  it("refuses a file named twice", () => {
    expect(() => imageInputsSha256("pgbouncer", [...files, files[0]], list)).toThrow("name pgbouncer/Dockerfile twice");
  });

  it("reads the committed files the same way every time, and differently per image", () => {
    expect(readPgstackImageInputs(root).sha256).toEqual(readPgstackImageInputs(root).sha256);
    expect(new Set(Object.values(readPgstackImageInputs(root).sha256)).size).toBe(pgstackImages.length);
  });

  it("tags as <prefix><image>:<12 hex digits>, and refuses a prefix that makes no image reference", () => {
    expect(imageTag("pgstack-", "pgbouncer", base)).toBe(`pgstack-pgbouncer:${base.slice(0, 12)}`);
    expect(imageTag("registry.example:5000/team/", "node", base)).toBe(`registry.example:5000/team/node:${base.slice(0, 12)}`);
    expect(() => imageTag("Team/", "node", base)).toThrow('the tag prefix "Team/" makes the image reference Team/node:');
    expect(() => imageTag("pgstack-", "node", "abc")).toThrow("is not a sha256");
  });
});
