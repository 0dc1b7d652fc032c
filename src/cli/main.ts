#!/usr/bin/env bun
import { type ArgsDef, type CommandDef, renderUsage, runCommand } from "citty";
import { nearestName } from "../config/config.ts";
import { declaredLogFormat } from "../config/config-file.ts";
import { ConfigError } from "../config/errors.ts";
import { DataPlaneUnavailableError } from "../dataplane/errors.ts";
import { colorEnabled, type FatalError, formatFatal } from "../log.ts";
import { StartupError } from "../service/errors.ts";
import { versionText } from "../version.ts";
import { connectCommand } from "./connect.ts";
import { healthCommand } from "./health.ts";
import { probeCommand } from "./probe.ts";
import { relayCommand } from "./relay-command.ts";
import { tokenCommand } from "./token.ts";

// The relay is the default command, so `quic-relay --port 5000` works as it did in the original.
const subCommands: Record<string, CommandDef<any>> = {
  relay: relayCommand,
  connect: connectCommand,
  probe: probeCommand,
  token: tokenCommand,
  health: healthCommand,
};

/** Flags every command has, answered here before the command runs (`--help` and `-h` too). */
const COMMON_ARGS: ArgsDef = { version: { type: "boolean", description: "Print the version (and Bun's) and exit" } };

async function main(argv: string[]): Promise<void> {
  const first = argv[0];
  const commandName = first !== undefined && !first.startsWith("-") ? first : undefined;
  const named = commandName === undefined ? undefined : subCommands[commandName];
  const command: CommandDef<any> = named ?? relayCommand;
  const rawArgs = named ? argv.slice(1) : argv;
  // The relay's fatal errors come in its log format (under json, a line a log pipeline can parse);
  // the client commands write for a person.
  const format = command === relayCommand ? declaredLogFormat(rawArgs, process.env) : "pretty";
  const usageError = (message: string) =>
    exit({ message, exitCode: 2, hint: `run '${named ? `quic-relay ${commandName} --help` : "quic-relay --help"}' for usage` }, format);
  if (commandName !== undefined && !named) {
    return usageError(`unknown command '${commandName}' (commands: ${Object.keys(subCommands).join(", ")})`);
  }
  const args = { ...((command.args ?? {}) as ArgsDef), ...COMMON_ARGS };
  const flags = rawArgs.includes("--") ? rawArgs.slice(0, rawArgs.indexOf("--")) : rawArgs;
  if (flags.includes("--help") || flags.includes("-h")) {
    const usage = await renderUsage({ ...command, args });
    process.stdout.write((colorEnabled(process.stdout, process.env) ? usage : Bun.stripANSI(usage)) + "\n");
    return;
  }
  if (flags.includes("--version")) {
    process.stdout.write(versionText() + "\n");
    return;
  }
  const unknown = unknownFlag(rawArgs, args);
  if (unknown) {
    const near = nearestName(unknown.replace(/^-{1,2}/, "").split("=")[0]!, Object.keys(args));
    return usageError(`unknown flag '${unknown}'${near ? ` (did you mean '--${near}'?)` : ""}`);
  }
  try {
    await runCommand(command, { rawArgs });
  } catch (error) {
    if (error instanceof ConfigError || error instanceof DataPlaneUnavailableError || isCliError(error)) {
      return usageError((error as Error).message);
    }
    if (error instanceof StartupError) return exit({ message: error.message, exitCode: 1 }, format);
    // A bug: under json it still ends in one parsable line, the stack as a field.
    if (format === "json") return exit({ message: `internal error: ${(error as Error)?.message ?? String(error)}`, exitCode: 1, stack: (error as Error)?.stack }, format);
    throw error;
  }
}

/** The first `--flag` that the command does not define, if any. */
function unknownFlag(rawArgs: string[], args: ArgsDef): string | undefined {
  for (const arg of rawArgs) {
    if (arg === "--") break;
    if (!arg.startsWith("-") || /^-\d/.test(arg)) continue;
    const name = arg.replace(/^-{1,2}/, "").split("=")[0]!;
    const plain = name.startsWith("no-") ? name.slice(3) : name;
    const known = Object.entries(args).some(
      ([key, def]) => key === name || key === plain || ([] as string[]).concat((def as { alias?: string | string[] }).alias ?? []).includes(name),
    );
    if (!known) return arg;
  }
  return undefined;
}

function isCliError(error: unknown): boolean {
  return error instanceof Error && (error.name === "CLIError" || "code" in error && String((error as { code: unknown }).code).startsWith("E"));
}

/** Reports a fatal error in one line (plus a hint line for usage errors, in the pretty format) and exits. */
function exit(error: FatalError, format: "pretty" | "json"): never {
  process.stderr.write(formatFatal(error, format, colorEnabled(process.stderr, process.env)));
  process.exit(error.exitCode);
}

await main(process.argv.slice(2));
