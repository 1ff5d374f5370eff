/**
 * Go's time.Duration text, both ways: the provider parses a health check's interval, timeout and start period with
 * time.ParseDuration and hands the Engine API nanoseconds; it reads them back with Duration.String ("5s", "2m0s").
 */

const unitNanoseconds: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  "µs": 1e3, // U+00B5 micro sign
  "μs": 1e3, // U+03BC Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/**
 * Nanoseconds of a Go duration ("300ms", "1.5h", "2m0s"; "0" alone is allowed). Throws on what Go would refuse: the
 * provider then ignores the error and sends 0, which silently means Docker's default, so the mocks refuse instead.
 */
export function parseGoDuration(text: string): number {
  if (text === "0") return 0;
  const body = text.startsWith("-") || text.startsWith("+") ? text.slice(1) : text;
  const sign = text.startsWith("-") ? -1 : 1;
  const part = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  let rest = body;
  let total = 0;
  if (rest === "") throw new Error(`"${text}" is not a Go duration (e.g. "5s", "2m0s", "300ms")`);
  while (rest !== "") {
    const match = part.exec(rest);
    if (match === null) throw new Error(`"${text}" is not a Go duration (e.g. "5s", "2m0s", "300ms")`);
    total += Number(match[1]) * unitNanoseconds[match[2]];
    rest = rest.slice(match[0].length);
  }
  return sign * Math.round(total);
}

/** `whole.fraction` with the fraction's trailing zeros dropped (Go's fmtFrac). */
function withFraction(whole: number, fraction: number, digits: number): string {
  const text = fraction === 0 ? "" : `.${String(fraction).padStart(digits, "0").replace(/0+$/, "")}`;
  return `${whole}${text}`;
}

/** Go's Duration.String of a whole number of nanoseconds: "0s", "300ms", "1.5s", "2m0s", "1h0m0s". */
export function formatGoDuration(nanoseconds: number): string {
  if (!Number.isInteger(nanoseconds)) throw new Error(`${nanoseconds} ns is not a whole number of nanoseconds`);
  if (nanoseconds === 0) return "0s";
  const sign = nanoseconds < 0 ? "-" : "";
  const n = Math.abs(nanoseconds);
  if (n < 1e3) return `${sign}${n}ns`;
  if (n < 1e6) return `${sign}${withFraction(Math.floor(n / 1e3), n % 1e3, 3)}µs`;
  if (n < 1e9) return `${sign}${withFraction(Math.floor(n / 1e6), n % 1e6, 6)}ms`;
  const hours = Math.floor(n / 3600e9);
  const minutes = Math.floor((n % 3600e9) / 60e9);
  const seconds = n % 60e9;
  const secondsText = `${withFraction(Math.floor(seconds / 1e9), seconds % 1e9, 9)}s`;
  if (hours > 0) return `${sign}${hours}h${minutes}m${secondsText}`;
  if (minutes > 0) return `${sign}${minutes}m${secondsText}`;
  return `${sign}${secondsText}`;
}
