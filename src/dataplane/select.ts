import { DataPlaneUnavailableError } from "./errors.ts";
import { createTsPlane } from "./socket-plane.ts";
import type { DataPlane, DataPlaneKind, DataPlaneOptions } from "./types.ts";

export type DataPlaneChoice = "auto" | DataPlaneKind;
export const DATA_PLANE_CHOICES: readonly DataPlaneChoice[] = ["auto", "ts", "native"];

interface NativeAddonModule {
  loadNativeAddon(): { ok: true } | { ok: false; reason: string };
}
interface NativePlaneModule {
  createNativePlane(opts: DataPlaneOptions): DataPlane;
}

/** Whether the native addon loads here, and if not, why. */
export function nativeAvailability(): { ok: true } | { ok: false; reason: string } {
  let addon: NativeAddonModule;
  try {
    addon = require("./native-addon.ts") as NativeAddonModule;
  } catch (error) {
    return { ok: false, reason: `native data plane not included (${firstLine(error)})` };
  }
  const loaded = addon.loadNativeAddon();
  return loaded.ok ? { ok: true } : { ok: false, reason: loaded.reason };
}

/** Planes that can run in this process: always `ts`, plus `native` when the addon loads. */
export function availablePlanes(): DataPlaneKind[] {
  return nativeAvailability().ok ? ["ts", "native"] : ["ts"];
}

export interface SelectedPlane {
  plane: DataPlane;
  /** Why `auto` fell back to the TS plane, if it did. */
  fallbackReason?: string;
}

/** `native` without the addon is an error; `auto` prefers native and says why it could not. */
export function createDataPlane(choice: DataPlaneChoice, opts: DataPlaneOptions): SelectedPlane {
  if (choice === "ts") return { plane: createTsPlane(opts) };
  const native = nativeAvailability();
  if (native.ok) {
    const module = require("./native.ts") as NativePlaneModule;
    return { plane: module.createNativePlane(opts) };
  }
  if (choice === "native") throw new DataPlaneUnavailableError("native", native.reason);
  return { plane: createTsPlane(opts), fallbackReason: native.reason };
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split("\n")[0]!;
}
