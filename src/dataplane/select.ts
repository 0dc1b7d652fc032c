import { DataPlaneUnavailableError } from "./errors.ts";
import { loadNativeAddon, NO_NATIVE_ENV } from "./native-addon.ts";
import { createNativePlane } from "./native.ts";
import { createSocketPlane } from "./socket-plane.ts";
import type { DataPlane, DataPlaneKind, DataPlaneOptions } from "./types.ts";

export type DataPlaneChoice = "auto" | DataPlaneKind;
export const DATA_PLANE_CHOICES: readonly DataPlaneChoice[] = ["auto", "ts", "native"];

/** Planes that can run in this process: always `ts`, plus `native` when the addon loads. */
export function availablePlanes(): DataPlaneKind[] {
  return loadNativeAddon().ok ? ["ts", "native"] : ["ts"];
}

export interface SelectedPlane {
  plane: DataPlane;
  /** Why `auto` fell back to the TS plane, if it did. */
  fallbackReason?: string;
  /**
   * The fallback is what the operator asked for (QUIC_RELAY_NO_NATIVE=1): worth an info line,
   * not a warning. Otherwise the relay runs slower than it could, and the reason says how to fix it.
   */
  fallbackExpected?: boolean;
}

/** `native` without the addon is an error; `auto` prefers native and says why it could not. */
export function createDataPlane(choice: DataPlaneChoice, opts: DataPlaneOptions): SelectedPlane {
  if (choice === "ts") return { plane: createSocketPlane(opts) };
  const native = loadNativeAddon();
  if (native.ok) return { plane: createNativePlane(opts) };
  if (choice === "native") throw new DataPlaneUnavailableError("native", native.reason);
  if (native.disabled) return { plane: createSocketPlane(opts), fallbackReason: native.reason, fallbackExpected: true };
  const silence = `or set ${NO_NATIVE_ENV}=1 (or --dataplane ts) to run the TS plane without this warning`;
  return { plane: createSocketPlane(opts), fallbackReason: `${native.reason}; ${silence}`, fallbackExpected: false };
}
