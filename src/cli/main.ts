#!/usr/bin/env bun
import { type ArgsDef, type CommandDef, renderUsage, runCommand } from "citty";
import { ConfigError } from "../config/errors.ts";
import { DataPlaneUnavailableError } from "../dataplane/errors.ts";
import { StartupError } from "../service/errors.ts";
import { connectCommand } from "./connect.ts";
import { probeCommand } from "./probe.ts";
import { relayCommand } from "./relay-command.ts";
import { tokenCommand } from "./token.ts";

// The relay is the default command, so `quic-relay --port 5000` works as it did in the original.
const subCommands: Record<string, CommandDef<any>> = {
  relay: relayCommand,
  connect: connectCommand,
  probe: probeCommand,
  token: tokenCommand,
};

async function main(argv: string[]): Promise<void> {
  const first = argv[0];
  const named = first !== undefined && !first.startsWith("-") ? subCommands[first] : undefined;
  if (first !== undefined && !first.startsWith("-") && !named) {
    return fail(relayCommand, `unknown command '${first}' (commands: ${Object.keys(subCommands).join(", ")})`);
  }
  const command = named ?? relayCommand;
  const rawArgs = named ? argv.slice(1) : argv;
  if (rawArgs.includes("--help") || rawArgs.includes("-h")) {
    process.stdout.write((await renderUsage(command)) + "\n");
    return;
  }
  const unknown = unknownFlag(rawArgs, (command.args ?? {}) as ArgsDef);
  if (unknown) return fail(command, `unknown flag '${unknown}'`);
  try {
    await runCommand(command, { rawArgs });
  } catch (error) {
    if (error instanceof ConfigError || error instanceof DataPlaneUnavailableError || isCliError(error)) {
      return fail(command, (error as Error).message);
    }
    if (error instanceof StartupError) {
      process.stderr.write(`quic-relay: ${error.message}\n`);
      process.exit(1);
    }
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

async function fail(command: CommandDef<any>, message: string): Promise<void> {
  process.stderr.write(`quic-relay: ${message}\n\n${await renderUsage(command)}\n`);
  process.exit(2);
}

await main(process.argv.slice(2));
