/**
 * pg_hba.conf: SCRAM-SHA-256 only, never `trust`; over TCP only with TLS (`hostssl`), loopback included, and only from
 * loopback and the cluster's own networks; the superuser never over TCP, only on the Unix socket by peer (pg_ident.conf
 * says which OS users). The first matching line decides; a connection without TLS meets a `hostnossl … reject` line
 * and is told so ("no encryption"), anything else the closing `reject` lines.
 */
import { superuser } from "./roles";

/**
 * The private ranges of RFC 1918. Kubernetes pod and service networks are carved from them by every common CNI
 * (flannel 10.244.0.0/16, Calico 192.168.0.0/16, EKS/GKE/AKS VPC ranges), as are Docker's bridge networks
 * (172.17.0.0/16 …), and none of them is routable from the internet. Narrow them with `allowedCidrs` when the
 * pod CIDR is known; the NetworkPolicy narrows them further on Kubernetes.
 */
export const privateNetworks: readonly string[] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

export interface PgHbaOptions {
  /** Networks allowed to connect over TCP besides loopback. Defaults to `privateNetworks`. */
  readonly allowedCidrs?: readonly string[];
}

const ipv4Cidr = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const ipv6Cidr = /^[0-9a-fA-F:]+\/(\d{1,3})$/;

function checkCidr(cidr: string): void {
  const v4 = ipv4Cidr.exec(cidr);
  if (v4) {
    if (v4.slice(1, 5).some((o) => Number(o) > 255) || Number(v4[5]) > 32) throw new Error(`pg_hba: "${cidr}" is not an IPv4 CIDR`);
    if (Number(v4[5]) === 0) throw new Error(`pg_hba: "${cidr}" admits every IPv4 address; list the cluster's networks instead`);
    return;
  }
  const v6 = ipv6Cidr.exec(cidr);
  if (v6 && cidr.includes(":") && Number(v6[1]) <= 128) {
    if (Number(v6[1]) === 0) throw new Error(`pg_hba: "${cidr}" admits every IPv6 address; list the cluster's networks instead`);
    return;
  }
  throw new Error(`pg_hba: "${cidr}" is not a CIDR such as 10.0.0.0/8 or fd00::/8`);
}

/** The pg_ident.conf map the superuser's peer line names. */
export const superuserIdentMap = "superuser";

/**
 * pg_ident.conf: which OS users may be the superuser on the socket. `postgres` (uid 999 in the images, the rig's
 * server user) everywhere; on the perf cluster also `root`, who runs pgstack and its tests on the host (the socket is
 * in a root-only scratch directory there). Same input, same bytes.
 */
export function renderPgIdent(opts: { readonly hostRoot: boolean }): string {
  const row = (system: string, why: string) => `${superuserIdentMap.padEnd(10)} ${system.padEnd(16)} ${superuser.padEnd(10)} # ${why}`;
  return [
    "# pg_ident.conf rendered by pgvector-stack: the OS users the superuser's peer line (pg_hba.conf) admits.",
    "# MAPNAME  SYSTEM-USERNAME  PG-USERNAME",
    row("postgres", "the server's own OS user: maintenance inside the pod/container, the tls-reloader"),
    ...(opts.hostRoot ? [row("root", "the perf cluster's host side (pgstack, its tests): root already owns every file of the cluster")] : []),
    "",
  ].join("\n");
}

/** The complete pg_hba.conf. Same input, same bytes. */
export function renderPgHba(opts: PgHbaOptions = {}): string {
  const networks = [...new Set(opts.allowedCidrs ?? privateNetworks)];
  networks.forEach(checkCidr);
  const row = (type: string, database: string, user: string, address: string, method: string, why: string) =>
    `${type.padEnd(9)} ${database.padEnd(9)} ${user.padEnd(9)} ${address.padEnd(18)} ${method.padEnd(14)} # ${why}`;
  return [
    "# pg_hba.conf rendered by pgvector-stack: SCRAM-SHA-256 only, no trust; first match wins, no match is refused.",
    "# TYPE     DATABASE  USER      ADDRESS            METHOD",
    row("local", "all", superuser, "", `peer map=${superuserIdentMap}`, "the superuser: on the socket only, as the OS users pg_ident.conf maps"),
    row("local", "all", "all", "", "scram-sha-256", "every other role on the socket, by password"),
    row("host", "all", superuser, "0.0.0.0/0", "reject", "guide, Security: the superuser never logs in over the network, loopback included"),
    row("host", "all", superuser, "::/0", "reject", "the same for IPv6"),
    row("hostnossl", "all", "all", "0.0.0.0/0", "reject", "guide, Security: SSL/TLS for all connections: without TLS, refused, loopback too"),
    row("hostnossl", "all", "all", "::/0", "reject", "the same for IPv6"),
    row("hostssl", "all", "all", "127.0.0.1/32", "scram-sha-256", "loopback: PgBouncer and the exporters beside the server"),
    row("hostssl", "all", "all", "::1/128", "scram-sha-256", "loopback, IPv6"),
    ...networks.map((cidr) => row("hostssl", "all", "all", cidr, "scram-sha-256", "cluster/pod network (guide: private network for database connections)")),
    row("host", "all", "all", "0.0.0.0/0", "reject", "anything else: refused"),
    row("host", "all", "all", "::/0", "reject", "anything else: refused"),
    "",
  ].join("\n");
}
