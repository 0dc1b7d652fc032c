import type { udp } from "bun";
import { CookieMinter } from "../../src/protocol/cookie.ts";
import { RefusalCode } from "../../src/protocol/errors.ts";
import { isReg, parseReg } from "../../src/protocol/reg.ts";
import { encodeMove, encodeRetry, refusalReply, RETRY_LENGTH } from "../../src/protocol/replies.ts";
import type { HostPort } from "../../src/net/address.ts";

/**
 * A scriptable stand-in for the relay, for client tests that need failure modes the real relay
 * does not have on demand: swallowing ACKs, refusing with ERR, going silent, asking for
 * return-routability proof, sending peers to another relay (MOVE), predating the `move` flag.
 * Pairs two addresses per session and forwards between them (no holding, no rebinding).
 */
export interface FakeRelayOptions {
  /** Ignore this many REGs (no ACK) before answering. */
  dropRegs?: number;
  /** Answer every REG with this datagram instead of ACK (e.g. "ERR full\n"). */
  refuseWith?: string;
  /**
   * Require return-routability proof: a REG without a valid cookie, from an address that is not
   * already a member of its session, gets `RETRY <cookie>` (or `ERR short` / `ERR` when it is too
   * short for a RETRY), as the real relay does in verified mode.
   */
  requireCookies?: boolean;
  /** Misbehave: answer every REG with a fresh RETRY and never ACK. */
  retryForever?: boolean;
  /** Answer every REG that carries the `move` flag (and proof, when required) with `MOVE <moveTo>`. */
  moveTo?: HostPort;
  /** False: a relay older than the flag, which refuses a REG carrying it as `ERR bad-id`. */
  knowsMoveFlag?: boolean;
}

export interface FakeRelayReg {
  address: string;
  port: number;
  session: string;
  cookie: string | undefined;
  /** The REG carried the `move` flag. */
  move: boolean;
}

export class FakeRelay {
  regs: FakeRelayReg[] = [];
  /** RETRYs sent, with the cookie each carried. */
  retries: string[] = [];
  forwarded = 0;
  /** A dead relay on a live host: REGs are recorded, nothing is answered or forwarded, no ICMP. */
  silent = false;
  dropRegs: number;
  refuseWith?: string;
  moveTo?: HostPort;
  knowsMoveFlag: boolean;
  /** MOVEs sent. */
  moves = 0;
  private readonly requireCookies: boolean;
  private readonly retryForever: boolean;
  private minter = new CookieMinter();
  private peers = new Map<string, string[]>();
  private partnerOf = new Map<string, { address: string; port: number }>();
  private constructor(
    private socket: udp.Socket<"uint8array">,
    options: FakeRelayOptions,
  ) {
    this.dropRegs = options.dropRegs ?? 0;
    this.refuseWith = options.refuseWith;
    this.requireCookies = options.requireCookies ?? false;
    this.retryForever = options.retryForever ?? false;
    this.moveTo = options.moveTo;
    this.knowsMoveFlag = options.knowsMoveFlag ?? true;
  }

  static async start(options: FakeRelayOptions = {}, hostname = "127.0.0.1"): Promise<FakeRelay> {
    let relay: FakeRelay | undefined;
    const socket = await Bun.udpSocket({
      hostname,
      port: 0,
      binaryType: "uint8array",
      socket: { data: (_s, data, port, address) => relay?.onDatagram(data, port, address) },
    });
    relay = new FakeRelay(socket, options);
    return relay;
  }

  get port(): number {
    return this.socket.port;
  }

  get host(): string {
    return this.socket.hostname;
  }

  /** Forget all sessions, as a restarted relay would; cookies it issued before no longer verify. */
  reset(): void {
    this.peers.clear();
    this.partnerOf.clear();
    this.minter = new CookieMinter();
  }

  close(): void {
    this.socket.close();
  }

  /** Send `text` from the relay's address, unasked (a forged or stray reply). */
  inject(text: string, to: HostPort): void {
    this.send(text, to.port, to.host);
  }

  private send(data: Uint8Array | string, port: number, address: string): void {
    this.socket.send(typeof data === "string" ? new TextEncoder().encode(data) : data, port, address);
  }

  private onDatagram(data: Uint8Array, port: number, address: string): void {
    const key = `${address}|${port}`;
    if (isReg(data)) {
      const reg = parseReg(data);
      if (reg.ok && reg.move && !this.knowsMoveFlag) {
        this.regs.push({ address, port, session: reg.sessionId, cookie: reg.cookie, move: true });
        const reply = refusalReply(RefusalCode.BadId, data.length);
        if (reply) this.send(reply, port, address);
        return;
      }
      if (!reg.ok) {
        const reply = refusalReply(reg.code, data.length);
        if (reply) this.send(reply, port, address);
        return;
      }
      const { sessionId: session, cookie, move } = reg;
      this.regs.push({ address, port, session, cookie, move });
      if (this.silent) return;
      if (this.dropRegs > 0) {
        this.dropRegs--;
        return;
      }
      if (this.refuseWith !== undefined) {
        this.send(this.refuseWith, port, address);
        return;
      }
      const members = this.peers.get(session) ?? [];
      if ((this.requireCookies || this.retryForever) && !this.proven(members.includes(key), cookie, address, port, session)) {
        if (data.length < RETRY_LENGTH) {
          const reply = refusalReply(RefusalCode.Short, data.length);
          if (reply) this.send(reply, port, address);
          return;
        }
        const fresh = this.minter.mint(address, port, session, Math.floor(Date.now() / 1000));
        this.retries.push(fresh);
        this.send(encodeRetry(fresh), port, address);
        return;
      }
      const moveReply = move && this.moveTo ? encodeMove(this.moveTo, data.length) : undefined;
      if (moveReply) {
        this.moves++;
        this.send(moveReply, port, address);
        return;
      }
      if (!members.includes(key) && members.length < 2) members.push(key);
      this.peers.set(session, members);
      if (members.length === 2) {
        const [a, b] = members.map((m) => {
          const [host, p] = m.split("|");
          return { address: host!, port: Number(p) };
        });
        this.partnerOf.set(members[0]!, b!);
        this.partnerOf.set(members[1]!, a!);
      }
      this.send("ACK\n", port, address);
      return;
    }
    const partner = this.partnerOf.get(key);
    if (!partner || this.silent) return;
    this.forwarded++;
    this.socket.send(data, partner.port, partner.address);
  }

  /** A member known at this address needs no fresh proof (its cookie may be stale); others need a valid cookie. */
  private proven(member: boolean, cookie: string | undefined, address: string, port: number, session: string): boolean {
    if (this.retryForever) return false;
    if (member) return true;
    return cookie !== undefined && this.minter.check(cookie, address, port, session, Math.floor(Date.now() / 1000)) === "ok";
  }
}
