import * as fs from "node:fs";
import * as path from "node:path";

/** Used when apt's sources name no usable mirror (a host set up from a CD, or with only a proxy scheme). */
export const FALLBACK_DEBIAN_MIRROR = "http://deb.debian.org/debian";

/**
 * The Debian archive this host's apt already uses, so the rootfs comes from the same (reachable, maybe
 * local) mirror. Security archives are skipped: debootstrap needs the main archive.
 */
export function debianMirror(aptDir = "/etc/apt"): string {
  for (const uri of aptSourceUris(aptDir)) {
    if (!/^https?:\/\//.test(uri)) continue;
    if (/debian-security\/?$/.test(uri)) continue;
    return uri.replace(/\/+$/, "");
  }
  return FALLBACK_DEBIAN_MIRROR;
}

/** URIs of enabled `deb` entries, one-line (`.list`) and deb822 (`.sources`) formats, in apt's file order. */
export function aptSourceUris(aptDir: string): string[] {
  const files: string[] = [];
  const main = path.join(aptDir, "sources.list");
  if (fs.existsSync(main)) files.push(main);
  const partsDir = path.join(aptDir, "sources.list.d");
  if (fs.existsSync(partsDir)) {
    for (const name of fs.readdirSync(partsDir).sort()) {
      if (name.endsWith(".list") || name.endsWith(".sources")) files.push(path.join(partsDir, name));
    }
  }
  return files.flatMap((file) => {
    const text = fs.readFileSync(file, "utf8");
    return file.endsWith(".sources") ? deb822Uris(text) : oneLineUris(text);
  });
}

function oneLineUris(text: string): string[] {
  const uris: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    // deb [arch=amd64 signed-by=…] URI suite components…
    const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line);
    if (match) uris.push(match[1]);
  }
  return uris;
}

function deb822Uris(text: string): string[] {
  const uris: string[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split("\n")) {
      if (line.startsWith("#")) continue;
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (match) fields.set(match[1].toLowerCase(), match[2].trim());
    }
    const types = (fields.get("types") ?? "").split(/\s+/);
    if (!types.includes("deb") || fields.get("enabled") === "no") continue;
    uris.push(...(fields.get("uris") ?? "").split(/\s+/).filter(Boolean));
  }
  return uris;
}
