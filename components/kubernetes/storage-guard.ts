/**
 * The data volume of a deployed Kubernetes stack cannot be changed by `pulumi up` alone: a StatefulSet's
 * volumeClaimTemplates are immutable, @pulumi/kubernetes 4.x plans a delete-before-replace for any change to them
 * (its diff lists `.spec.volumeClaimTemplates` as forceNew), and the recreated StatefulSet adopts the old claim
 * unchanged — PostgreSQL goes down and nothing is resized. So the program remembers what it deployed (the stack
 * output `deployedStorage`), reads it back before it registers anything, and refuses a change with what to do
 * instead: grow the claim by hand (docs/runbooks.md, "Growing the data volume") and record it with
 * `kubernetes.storageResizedFrom`; a smaller size or another StorageClass needs a new volume.
 */
import * as pulumi from "@pulumi/pulumi";
import type { KubernetesSpec } from "../../configs/stack-spec";
import { k8sQuantity } from "../../configs/kubernetes-resources";

/** The stack output that records the data volume as deployed. */
export const deployedStorageOutput = "deployedStorage";

/** The data volume as the StatefulSet's claim template asks for it. */
export interface DeployedStorage {
  readonly sizeBytes: number;
  readonly storageClassName: string | null;
}

export const runbookSection = "docs/runbooks.md#growing-the-data-volume";

export function desiredStorage(k: KubernetesSpec): DeployedStorage {
  return { sizeBytes: k.storageSizeBytes, storageClassName: k.storageClassName };
}

function className(name: string | null): string {
  return name === null ? "the cluster's default class" : `"${name}"`;
}

export interface StorageVerdict {
  /** Why `pulumi up` must stop; undefined when the change (or none) is safe. */
  readonly refusal?: string;
  /** Something to read that does not stop the update. */
  readonly warning?: string;
}

/**
 * Whether a deploy may go ahead, given what the previous one recorded (undefined: first deploy, or a stack
 * deployed before this output existed) and what the stack file asks for now.
 */
export function storageVerdict(previous: DeployedStorage | undefined, k: KubernetesSpec): StorageVerdict {
  const next = desiredStorage(k);
  if (previous === undefined) return {};
  if (previous.storageClassName !== next.storageClassName) {
    return {
      refusal:
        `kubernetes.storageClassName changed from ${className(previous.storageClassName)} to ${className(next.storageClassName)} on a deployed stack. ` +
        `A PersistentVolumeClaim's class cannot change, and neither can the StatefulSet's volumeClaimTemplates: put the previous value back. ` +
        `Another class means a new volume: deploy a new stack on it and move the data there (see ${runbookSection}).`,
    };
  }
  const from = k8sQuantity(previous.sizeBytes);
  const to = k8sQuantity(next.sizeBytes);
  if (next.sizeBytes < previous.sizeBytes) {
    return {
      refusal:
        `kubernetes.storageSize shrank from ${from} to ${to} on a deployed stack. A PersistentVolumeClaim can only grow: put ${from} back; ` +
        `a smaller volume means a new stack and moving the data there (see ${runbookSection}).`,
    };
  }
  const recorded = k.storageResizedFromBytes;
  if (next.sizeBytes > previous.sizeBytes && recorded !== previous.sizeBytes) {
    return {
      refusal:
        `kubernetes.storageSize grew from ${from} to ${to} on a deployed stack. A StatefulSet's volumeClaimTemplates cannot change, so pulumi up ` +
        `cannot grow the volume: expand its claim with kubectl as ${runbookSection} says, then record it by also setting ` +
        `kubernetes.storageResizedFrom: ${from} and run pulumi up again.` +
        (recorded !== null ? ` (kubernetes.storageResizedFrom is ${k8sQuantity(recorded)}, but the deployed size is ${from}.)` : ""),
    };
  }
  if (next.sizeBytes === previous.sizeBytes && recorded !== null) {
    return { warning: `kubernetes.storageResizedFrom ${k8sQuantity(recorded)} records a resize already deployed (the volume is ${to}); remove it from the stack file` };
  }
  return {};
}

/**
 * What the last deploy of this very stack recorded, read through a StackReference to itself: the engine answers
 * with the stack's outputs as they were before this update (none at all on a first deploy). Must be awaited before
 * any resource is registered, so a refusal leaves nothing half-applied.
 */
export async function previousStorage(): Promise<DeployedStorage | undefined> {
  const self = new pulumi.StackReference(`${pulumi.getStack()}-previous-deploy`, {
    name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`,
  });
  const details = await self.getOutputDetails(deployedStorageOutput);
  const value = (details.value ?? details.secretValue) as Partial<DeployedStorage> | undefined;
  if (value === undefined || typeof value.sizeBytes !== "number") return undefined;
  return { sizeBytes: value.sizeBytes, storageClassName: typeof value.storageClassName === "string" ? value.storageClassName : null };
}

/** Reads the previous deploy and stops the program with Pulumi's clean error when the change is unsafe. */
export async function guardStorageChange(k: KubernetesSpec): Promise<void> {
  const verdict = storageVerdict(await previousStorage(), k);
  if (verdict.refusal !== undefined) throw new pulumi.RunError(verdict.refusal);
  if (verdict.warning !== undefined) void pulumi.log.warn(verdict.warning);
}
