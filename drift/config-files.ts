/**
 * Settings files read back as name → value, so drift is reported per setting and not per line: postgresql.conf
 * (PostgreSQL's own syntax), pgbouncer.ini (sections) and the `key: value` memory plan.
 */

/** name → value in file order; a name set twice keeps its last value, as PostgreSQL and PgBouncer do. */
export type Settings = ReadonlyMap<string, string>;

/**
 * postgresql.conf: `name = value` or `name value`, `#` comments, values bare or single-quoted ('' and \' escape a
 * quote). Names are case-insensitive in PostgreSQL; they are kept lower-case here.
 */
export function parsePostgresqlConf(text: string): Settings {
  const settings = new Map<string, string>();
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const match = /^([A-Za-z_][\w.]*)\s*(=\s*)?(.*)$/.exec(line);
    if (!match) throw new Error(`postgresql.conf line ${index + 1} is not "name = value": ${raw}`);
    const name = match[1].toLowerCase();
    const rest = match[3];
    let value: string;
    if (rest.startsWith("'")) {
      let out = "";
      let i = 1;
      for (; i < rest.length; i++) {
        const ch = rest[i];
        if (ch === "\\" && i + 1 < rest.length) {
          out += rest[++i];
        } else if (ch === "'") {
          if (rest[i + 1] === "'") {
            out += "'";
            i++;
          } else break;
        } else out += ch;
      }
      if (i >= rest.length) throw new Error(`postgresql.conf line ${index + 1}: unterminated quoted value: ${raw}`);
      value = out;
    } else {
      value = rest.replace(/#.*$/, "").trim();
    }
    settings.delete(name);
    settings.set(name, value);
  });
  return settings;
}

/** pgbouncer.ini: section → key → value. Comments start with `;` or `#` at the start of a line. */
export function parseIni(text: string): ReadonlyMap<string, Settings> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      const name = header[1].trim().toLowerCase();
      current = sections.get(name) ?? new Map<string, string>();
      sections.set(name, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0 || current === undefined) continue;
    const key = line.slice(0, eq).trim();
    current.delete(key);
    current.set(key, line.slice(eq + 1).trim());
  }
  return sections;
}

/** pgbouncer.ini flattened for comparison: `[pgbouncer]` keys by name, other sections as `section.key`. */
export function parsePgBouncerIni(text: string): Settings {
  const out = new Map<string, string>();
  for (const [section, entries] of parseIni(text)) {
    for (const [key, value] of entries) out.set(section === "pgbouncer" ? key : `${section}.${key}`, value);
  }
  return out;
}

/** `key: value` lines (memory-plan.yaml); `#` lines are comments. */
export function parseKeyValueLines(text: string): Settings {
  const out = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const match = /^([A-Za-z_][\w.-]*):\s*(.*)$/.exec(raw.trim());
    if (match && !raw.trim().startsWith("#")) out.set(match[1], match[2].trim());
  }
  return out;
}
