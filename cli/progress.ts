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
