import { defineCommand } from "citty";
import { ConfigError } from "../config/errors.ts";
import { MAX_SESSION_ID_LENGTH } from "../protocol/reg.ts";
import { resolveSecurityOptions, SECRET_ENV, securityFlags } from "../security/options.ts";
import { mintToken } from "../security/token.ts";

/** Longest token lifetime accepted: a leaked token is a bearer credential until it expires. */
export const MAX_TTL_SECS = 366 * 86_400;

export interface MintedToken {
  session: string;
  /** Unix seconds. */
  expiry: number;
  /** The REG session field: `<session>:<expiry>:<mac>`. */
  token: string;
  /** The whole datagram a peer sends, without the trailing newline. */
  reg: string;
}

/** Mints the REG field for `session`, valid for `ttlSecs` from `nowMs`; throws ConfigError on bad input. */
export function mintRegField(secret: Uint8Array, session: string, ttlSecs: number, nowMs = Date.now()): MintedToken {
  if (session === "" || !/^[\x21-\x7e]+$/.test(session))
    throw new ConfigError("--session must be 1+ printable ASCII characters without spaces", "session");
  const expiry = Math.floor(nowMs / 1000) + ttlSecs;
  const token = mintToken(secret, session, expiry);
  if (token.length > MAX_SESSION_ID_LENGTH)
    throw new ConfigError(`--session is too long: the token must fit in ${MAX_SESSION_ID_LENGTH} bytes (session id at most ${MAX_SESSION_ID_LENGTH - token.length + session.length})`, "session");
  return { session, expiry, token, reg: `REG:${token}` };
}

export const tokenCommand = defineCommand({
  meta: { name: "token", description: "Mint a time-limited REG token for a session (for the app that hands out sessions)" },
  args: {
    session: { type: "string", required: true, description: "Session id the token is bound to" },
    ttl: { type: "string", default: "300", description: "Seconds the token stays valid (default 300)" },
    secret: {
      type: "string",
      alias: ["auth-secret"],
      description: `HMAC secret (the first of several mints); default --secret-file or ${SECRET_ENV}`,
    },
    "secret-file": { type: "string", alias: ["auth-secret-file"], description: "File with one secret per line; the first mints" },
    format: { type: "string", default: "token", description: "token (the REG field) | reg (REG:<token>) | json" },
  },
  run({ args, rawArgs }) {
    const ttlText = String(args.ttl ?? "").trim();
    if (!/^[0-9]+$/.test(ttlText) || Number(ttlText) < 1 || Number(ttlText) > MAX_TTL_SECS)
      throw new ConfigError(`--ttl must be an integer from 1 to ${MAX_TTL_SECS} seconds, got '${ttlText}'`, "ttl");
    const format = String(args.format);
    if (!["token", "reg", "json"].includes(format)) throw new ConfigError(`--format must be one of token, reg, json, got '${format}'`, "format");
    const flags = securityFlags({ "auth-secret": args.secret, "auth-secret-file": args["secret-file"] }, rawArgs.map((a) => a.replace(/^--secret(?==|$)/, "--auth-secret")));
    const { secrets } = resolveSecurityOptions({ authSecret: flags.authSecret, authSecretFile: flags.authSecretFile }, process.env);
    if (secrets.length === 0) throw new ConfigError(`a secret is needed: --secret, --secret-file or ${SECRET_ENV}`, "secret");
    const minted = mintRegField(secrets[0]!, String(args.session), Number(ttlText));
    const line = format === "json" ? JSON.stringify(minted) : format === "reg" ? minted.reg : minted.token;
    process.stdout.write(`${line}\n`);
  },
});
