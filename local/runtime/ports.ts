import * as net from "node:net";

/** Ports handed out by this process and not yet bound by their server, so two starts never pick the same one. */
const recentlyHanded = new Set<number>();

/** A free TCP port on 127.0.0.1, found by letting the kernel choose (binding port 0). */
export async function freeLoopbackPort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
      });
    });
    if (recentlyHanded.has(port)) continue;
    recentlyHanded.add(port);
    setTimeout(() => recentlyHanded.delete(port), 60_000).unref();
    return port;
  }
}

/** Thrown by a starter when its server could not bind its port because someone else took it meanwhile. */
export class PortInUseError extends Error {}

/** Logs of PostgreSQL, PgBouncer and the Go servers all say this when bind() fails with EADDRINUSE. */
export function saysAddressInUse(log: string): boolean {
  return /address already in use/i.test(log);
}

const PORT_ATTEMPTS = 5;

/**
 * Runs `start` on a free port. Between finding a free port and the server binding it, another process
 * may take it; on PortInUseError the start is tried again on a new port. A port chosen by the caller is
 * used as given, once.
 */
export async function onFreePort<T>(fixed: number | undefined, start: (port: number) => Promise<T>): Promise<T> {
  if (fixed !== undefined) return start(fixed);
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freeLoopbackPort());
    } catch (error) {
      if (!(error instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw error;
    }
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function acceptsTcp(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
