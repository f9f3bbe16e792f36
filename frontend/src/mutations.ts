// Key rotation and spend caps through the API's mutations. Expected failures come back as typed
// results (`... on Error { code message }`); they become ApiErrors the dialogs show.

import { ApiError, execute } from "./api";
import {
  AcknowledgeAnomalyDocument,
  DismissAnomalyDocument,
  type LeakPolicy,
  RestoreSpendCapDocument,
  ResumeVirtualKeyDocument,
  RotateVirtualKeyDocument,
  SetLeakPolicyDocument,
  SetSpendCapDocument,
  SuspendVirtualKeyDocument,
} from "./generated/graphql";
import type { AnomalyMutations } from "./sections/anomalies";
import type { KeyMutations, Rotated } from "./sections/keyActions";

function refused(result: { __typename: string; code?: string; message?: string }): ApiError {
  const kind = result.__typename === "NotAllowedError" ? "forbidden" : "invalid";
  return new ApiError(kind, result.message ?? `Refused (${result.code ?? result.__typename}).`);
}

export const keyMutations: KeyMutations = {
  async rotate(keyId: string, gracePeriodSeconds: number): Promise<Rotated> {
    const { rotateVirtualKey: result } = await execute(RotateVirtualKeyDocument, { keyId, gracePeriodSeconds });
    if (result.__typename !== "RotateVirtualKeySuccess") throw refused(result);
    return {
      secret: result.secret,
      secretPrefix: result.key.secretPrefix,
      previousSecretExpiresAt: result.previousSecretExpiresAt,
    };
  },
  async setCap(keyId: string, spendCapCents: number): Promise<void> {
    const { setSpendCap: result } = await execute(SetSpendCapDocument, { keyId, spendCapCents });
    if (result.__typename !== "SetSpendCapSuccess") throw refused(result);
    if (result.key.id !== keyId || result.key.spendCapCents !== spendCapCents) {
      throw new ApiError("server", "The cap was not saved as asked; reload and check the key.");
    }
  },
};

/** Acting on anomalies, and on the key an anomaly names (suspend, resume, leak policy). */
export const anomalyMutations: AnomalyMutations = {
  async acknowledge(id: string): Promise<void> {
    const { acknowledgeAnomaly: result } = await execute(AcknowledgeAnomalyDocument, { id });
    if (result.__typename !== "AnomalySuccess") throw refused(result);
  },
  async dismiss(id: string, reason: string): Promise<void> {
    const { dismissAnomaly: result } = await execute(DismissAnomalyDocument, { id, reason });
    if (result.__typename !== "AnomalySuccess") throw refused(result);
  },
  async restoreCap(id: string): Promise<void> {
    const { restoreSpendCap: result } = await execute(RestoreSpendCapDocument, { id });
    if (result.__typename !== "AnomalySuccess") throw refused(result);
  },
  async suspend(keyId: string, reason: string | null): Promise<void> {
    const { suspendVirtualKey: result } = await execute(SuspendVirtualKeyDocument, { keyId, reason });
    if (result.__typename !== "SuspendVirtualKeySuccess") throw refused(result);
  },
  async resume(keyId: string): Promise<void> {
    const { resumeVirtualKey: result } = await execute(ResumeVirtualKeyDocument, { keyId });
    if (result.__typename !== "ResumeVirtualKeySuccess") throw refused(result);
  },
  async setLeakPolicy(keyId: string, policy: LeakPolicy): Promise<void> {
    const { setLeakPolicy: result } = await execute(SetLeakPolicyDocument, { keyId, policy });
    if (result.__typename !== "SetLeakPolicySuccess") throw refused(result);
    if (result.key.leakPolicy !== policy) throw new ApiError("server", "The leak policy was not saved as asked; reload and check the key.");
  },
};
