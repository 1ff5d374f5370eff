/**
 * Keeping passwords out of everything we print: errors, logs, reports, URLs shown to people. One masker for every
 * room (postdeploy, drift, canary, the local cluster, the CLI), so a message is masked the same way wherever it
 * is printed.
 */

/** What a secret is replaced with. */
export const maskMark = "***";

/**
 * A postgresql:// URL's `user:password@`, whatever the password: greedy to the last `@` of the word, because a
 * password written into a URL by hand may hold an unencoded `@`, and the URL parser node-postgres uses (WHATWG)
 * also ends the credentials at the last one.
 */
const urlPassword = /(postgres(?:ql)?:\/\/[^:/@\s]*:)\S*@/gi;

/** `s` as written and percent-encoded (how it appears inside a URL); an unpaired surrogate has no encoded form. */
function writtenForms(secret: string): string[] {
  try {
    return [secret, encodeURIComponent(secret)];
  } catch {
    return [secret];
  }
}

/**
 * Every occurrence of each secret, raw or percent-encoded, replaced by ***; then the password of any postgresql://
 * URL left in the text, one we were not told about included. Longer forms go first, so a secret that contains
 * another (`hunter22`, `hunter2`) is masked whole rather than leaving a tail behind. Empty and missing secrets are
 * skipped: splitting on "" would put a mask between every character.
 */
export function maskSecrets(text: string, secrets: readonly (string | null | undefined)[]): string {
  const forms = [...new Set(secrets.filter((s): s is string => typeof s === "string" && s !== "").flatMap(writtenForms))];
  forms.sort((a, b) => b.length - a.length);
  let out = text;
  for (const form of forms) out = out.split(form).join(maskMark);
  return out.replace(urlPassword, `$1${maskMark}@`);
}

/** `scheme://user:password@` up to the last `@` before the path, for a URL `new URL` rejects (an invalid port…). */
const writtenPassword = /^[^:/?#]*:\/\/[^:/?#@]*:([^/?#]*)@/;

/**
 * The passwords inside connection URLs, as secrets for `maskSecrets`: each as written in the URL, as the URL parser
 * normalised it, and decoded (what the server and its error messages see). URLs without a password give nothing.
 */
export function urlPasswords(urls: readonly (string | null | undefined)[]): string[] {
  const out = new Set<string>();
  for (const url of urls) {
    if (!url) continue;
    const found: string[] = [];
    try {
      found.push(new URL(url).password);
    } catch {
      // Not a URL to the parser: the pattern below still finds a user:password@ in it.
    }
    found.push(writtenPassword.exec(url)?.[1] ?? "");
    for (const password of found) {
      if (password === "") continue;
      out.add(password);
      try {
        out.add(decodeURIComponent(password));
      } catch {
        // Not valid percent-encoding: the password is meant as written.
      }
    }
  }
  return [...out];
}

/** `postgresql://user:***@host:port/db`: a connection URL safe to print, otherwise exactly as given. */
export function maskUrl(url: string): string {
  return maskSecrets(url, urlPasswords([url]));
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A new Error with `error`'s message masked, after `context` when given. It keeps the driver's `code` (SQLSTATE or
 * errno: callers branch on it) but not the original error, whose message and stack would still hold the secret.
 */
export function maskedError(error: unknown, secrets: readonly (string | null | undefined)[], context?: string): Error {
  const message = maskSecrets(errorMessage(error), secrets);
  const masked = new Error(context ? `${context}: ${message}` : message);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") Object.assign(masked, { code });
  return masked;
}
