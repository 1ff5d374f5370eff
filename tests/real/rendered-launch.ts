/**
 * The stack's exporters for real tests that start their own PostgreSQL and PgBouncer, started the one way the perf
 * cluster starts them (local/runtime/launch.ts): the stack rendered for a placement at this test's servers, each
 * rendered launch run as it is, the secrets it names in its environment only — never on a command line.
 */
import type { Launch, Launches, SecretInput } from "../../configs/launches";
import { localPlacement, type PlacementPaths, type PlacementPorts } from "../../configs/placement";
import { renderStack } from "../../configs/render";
import type { Rendered } from "../../configs/rendered";
import type { StackSpec } from "../../configs/stack-spec";
import type { TlsFiles } from "../../configs/tls";
import { onPlacedPort } from "../../local/cluster";
import { freeLoopbackPort, startLaunch, type HttpServer, type Runtime } from "../../local/runtime";

/**
 * A local stack rendered for this test's servers: PostgreSQL and PgBouncer where they run, a free loopback port for
 * each exporter, the paths given (postgres_exporter's queries file where the test wrote it).
 */
export async function renderedFor(spec: StackSpec, at: { readonly ports: Partial<PlacementPorts>; readonly paths?: Partial<PlacementPaths> }): Promise<Rendered> {
  const ports: Partial<PlacementPorts> = {
    postgresExporter: await freeLoopbackPort(),
    pgbouncerExporter: await freeLoopbackPort(),
    nodeExporter: await freeLoopbackPort(),
    ...at.ports,
  };
  return renderStack(spec, localPlacement({ ports, paths: at.paths }));
}

/**
 * The CA a rig server's certificate chains to, as the programs in the runtime see it: the `tlsCa` the exporters'
 * launches verify with. Every server the rig starts without a placement has one, from the same CA.
 */
export function rigCa(server: { readonly tls: TlsFiles | undefined }): string {
  if (server.tls === undefined) throw new Error("the server was started for a placement, which names its own CA");
  return server.tls.ca;
}

/** The launch's secret variables filled from `secrets`; names the input a launch needs that the test did not give. */
function secretEnvOf(launch: Launch, secrets: Partial<Record<SecretInput, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(launch.secretEnv).map(([variable, input]) => {
      const value = secrets[input];
      if (value === undefined) throw new Error(`${launch.program}'s launch needs ${input} for ${variable}`);
      return [variable, value];
    }),
  );
}

/**
 * Starts the rendered launch of one exporter. A port another process took first moves it to a new one and renders
 * again, as the cluster does; the rendering it runs on comes back with it.
 */
export async function startRenderedExporter(
  runtime: Runtime,
  rendered: Rendered,
  exporter: keyof Pick<Launches, "postgresExporter" | "pgbouncerExporter" | "nodeExporter">,
  secrets: Partial<Record<SecretInput, string>> = {},
): Promise<{ readonly server: HttpServer; readonly rendered: Rendered }> {
  const scratch = runtime.scratchDir(exporter);
  const placed = await onPlacedPort(rendered, exporter, (r) => {
    const launch = r.launches[exporter];
    return startLaunch({ runtime, launch, scratch, secretEnv: secretEnvOf(launch, secrets) });
  });
  return { server: placed.started, rendered: placed.rendered };
}
