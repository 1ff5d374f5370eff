/**
 * Draws the Progress interface on stderr: one redrawn line on a terminal, plain lines (every 10 %) in CI logs.
 */
import type { Progress } from "../configs/progress";

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr, prefix = ""): Progress {
  const tty = stream.isTTY === true;
  let step = "";
  let lastTenth = -1;
  let drawn = false;
  const clear = () => {
    if (tty && drawn) stream.write("\r\x1b[K");
    drawn = false;
  };
  return {
    step(message) {
      clear();
      step = message;
      lastTenth = -1;
      stream.write(`${prefix}${message}\n`);
    },
    advance(fraction, detail) {
      const pct = Math.max(0, Math.min(1, fraction));
      const width = 24;
      const filled = Math.round(pct * width);
      const line = `${prefix}  [${"#".repeat(filled)}${".".repeat(width - filled)}] ${(pct * 100).toFixed(0).padStart(3)} % ${detail ?? step}`;
      if (tty) {
        stream.write(`\r\x1b[K${line}`);
        drawn = true;
      } else {
        const tenth = Math.floor(pct * 10);
        if (tenth !== lastTenth) {
          lastTenth = tenth;
          stream.write(`${line}\n`);
        }
      }
    },
    warn(message) {
      clear();
      stream.write(`${prefix}warning: ${message}\n`);
    },
  };
}

/** Progress that can be taken off the screen once the work is done. */
export interface LineProgress extends Progress {
  /** Erases the progress line, so what is printed next starts on a clean line. */
  end(): void;
}

/**
 * Progress for commands whose output is a result (render, drift, diff): one line on stderr, redrawn in place, only
 * when stderr is a terminal; nothing in CI logs or pipes, so their stderr holds only warnings and errors. Warnings
 * are always printed.
 */
export function ttyProgress(stream: NodeJS.WriteStream = process.stderr): LineProgress {
  const tty = stream.isTTY === true;
  let step = "";
  let drawn = false;
  const draw = (line: string) => {
    if (!tty) return;
    // A line wider than the terminal wraps, and \r would then redraw only its last part. A terminal that reports no
    // width, or 0 (a serial console, some CI pseudo-terminals, `stty cols 0`), gets the conventional 80.
    const columns = typeof stream.columns === "number" && stream.columns > 0 ? stream.columns : 80;
    const width = Math.max(20, columns - 1);
    stream.write(`\r\x1b[K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
    drawn = true;
  };
  const clear = () => {
    if (drawn) stream.write("\r\x1b[K");
    drawn = false;
  };
  return {
    step(message) {
      step = message;
      draw(message);
    },
    advance(fraction, detail) {
      const pct = Math.max(0, Math.min(1, fraction));
      const width = 20;
      const filled = Math.round(pct * width);
      draw(`[${"#".repeat(filled)}${".".repeat(width - filled)}] ${(pct * 100).toFixed(0).padStart(3)} % ${detail ?? step}`);
    },
    warn(message) {
      clear();
      stream.write(`warning: ${message}\n`);
    },
    end: clear,
  };
}
