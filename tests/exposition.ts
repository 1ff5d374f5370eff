/**
 * Prometheus's text exposition format, as the tests read it from the canary, mtail and the exporters: one parser
 * for series with their labels, one for looking a series up by its exact text.
 */

export interface Series {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Every sample line → name, unescaped labels, value. Throws on a line that is not a sample or a comment. */
export function parseExposition(body: string): Series[] {
  const series: Series[] = [];
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    for (let l = labelPattern.exec(m[2] ?? ""); l; l = labelPattern.exec(m[2] ?? "")) labels[l[1]] = JSON.parse(`"${l[2]}"`) as string;
    series.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return series;
}

/** "name{labels}" exactly as the program wrote it → value. */
export function samples(body: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\S+?)(\{.*\})?\s+(\S+)$/.exec(line);
    if (m) out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}
