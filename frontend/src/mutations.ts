// Key rotation and spend caps through the API's mutations. Expected failures come back as typed
// results (`... on Error { code message }`); they become ApiErrors the dialogs show.

import { ApiError, execute } from "./api";
import { RotateVirtualKeyDocument, SetSpendCapDocument } from "./generated/graphql";
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
