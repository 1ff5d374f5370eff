/**
 * A short unified diff of two texts, for the files a drift report cannot compare as settings or data (pg_hba.conf,
 * SQL, multi-line resource inputs). Line-based LCS; the inputs are rendered files of a few hundred lines at most.
 */

/** `-`/`+`/` ` prefixed lines with `context` unchanged lines around each change, hunks separated by `@@` lines. */
export function unifiedDiff(oldText: string, newText: string, context = 2): string[] {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  const ops = lineOps(a, b);
  const changed = ops.map((op) => op.kind !== " ");
  const keep = ops.map((_, i) => {
    for (let j = Math.max(0, i - context); j <= Math.min(ops.length - 1, i + context); j++) if (changed[j]) return true;
    return false;
  });
  const out: string[] = [];
  let inHunk = false;
  ops.forEach((op, i) => {
    if (!keep[i]) {
      inHunk = false;
      return;
    }
    if (!inHunk) {
      out.push(`@@ line ${op.oldLine} @@`);
      inHunk = true;
    }
    out.push(`${op.kind}${op.text}`);
  });
  return out;
}

function splitLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

interface LineOp {
  readonly kind: " " | "-" | "+";
  readonly text: string;
  /** 1-based line in the old text where this op sits. */
  readonly oldLine: number;
}

function lineOps(a: readonly string[], b: readonly string[]): LineOp[] {
  // Trim the common head and tail first: rendered files usually change in a few lines.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const am = a.slice(head, a.length - tail);
  const bm = b.slice(head, b.length - tail);
  const lcs: number[][] = Array.from({ length: am.length + 1 }, () => new Array<number>(bm.length + 1).fill(0));
  for (let i = am.length - 1; i >= 0; i--) {
    for (let j = bm.length - 1; j >= 0; j--) lcs[i][j] = am[i] === bm[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const ops: LineOp[] = a.slice(0, head).map((text, i) => ({ kind: " ", text, oldLine: i + 1 }));
  let i = 0;
  let j = 0;
  while (i < am.length || j < bm.length) {
    const oldLine = head + i + 1;
    if (i < am.length && j < bm.length && am[i] === bm[j]) {
      ops.push({ kind: " ", text: am[i], oldLine });
      i++;
      j++;
    } else if (i < am.length && (j >= bm.length || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push({ kind: "-", text: am[i], oldLine });
      i++;
    } else {
      ops.push({ kind: "+", text: bm[j], oldLine });
      j++;
    }
  }
  a.slice(a.length - tail).forEach((text, k) => ops.push({ kind: " ", text, oldLine: a.length - tail + k + 1 }));
  return ops;
}
