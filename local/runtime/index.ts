/**
 * The real-server rig: finds or provisions PostgreSQL 17 + pgvector 0.8, PgBouncer 1.24, the exporters,
 * Prometheus/promtool 2.53, node_exporter and mtail, and starts them on loopback ports.
 *
 *   const runtime = await getRuntime({ progress });          // native programs, or the Debian 13 rootfs
 *   const pg = await startPostgres({ runtime, postgresqlConf, pgHbaConf });
 *   const exporter = await startLaunch({ runtime, launch: rendered.launches.postgresExporter, scratch, secretEnv });
 *   …
 *   afterAll(stopAll);                                        // in vitest; the CLI calls stopAll() itself
 *
 * Files for a server: `const dir = runtime.scratchDir("x")`, then `dir.writeFile("name", text)` returns
 * the path the program sees (inside the rootfs for chroot); `dir.hostPath` is where this process sees it.
 */
export { getRuntime, RUNTIME_ENV, type GetRuntimeOptions } from "./getRuntime";
export type { Runtime, RuntimeUser, ExecOptions, SpawnOptions } from "./runtime";
export type { ExecResult, ProcessExit, ServerProcess } from "./processes";
export type { ScratchDir } from "./scratch";
export { PROGRAMS, PGVECTOR_NEEDS, type ProgramName, type VersionedThing } from "./programs";
export { stopAll, runningServers } from "./registry";
export { freeLoopbackPort } from "./ports";
export { startPostgres, type PostgresOptions, type PostgresServer } from "./postgres";
export { startPgBouncer, type PgBouncerOptions, type PgBouncerServer } from "./pgbouncer";
export { writeRigTls, type RigTls } from "./tls";
export { startLaunch, type LaunchOptions } from "./launch";
export type { HttpServer } from "./httpServer";
export { startPrometheus, promtool, type PrometheusOptions, type PrometheusServer } from "./prometheus";
export { ROOTFS_SUITE, defaultRootfsDir, rootfsIsReady, rootfsPins, unmountRootfs, removeRootfs } from "./rootfs";
export { httpGet } from "./readiness";
