import type { udp } from "bun";
import { formatHostPort, type HostPort, sameHost } from "../net/address.ts";
import { parseMove } from "../protocol/replies.ts";
import { RegistrationRefusedError, RelayUnreachableError } from "./errors.ts";
import { RelayChoice, relayKey } from "./relay-addresses.ts";
import { MAX_MOVES_PER_ROUND, type MoveOffer, type MoveRefusal, RelayRegistration } from "./registration.ts";
import { newTunnelStats, type TunnelOptions, type TunnelStats } from "./tunnel-types.ts";

export type { RelayChange, TunnelLogger, TunnelMode, TunnelOptions, TunnelStats } from "./tunnel-types.ts";

type Socket = udp.Socket<"uint8array">;

const REFUSALS: Record<MoveRefusal, string> = {
  "too-many": `${MAX_MOVES_PER_ROUND} moves since the last registration`,
  undecided: "no decision before the REG timed out",
  "unknown-relay": "not one of the relay's addresses",
  "same-relay": "it names this relay",
};

export class RelayTunnel {
  readonly stats: TunnelStats = newTunnelStats();
  private relaySocket?: Socket;
  private appSocket?: Socket;
  private appPeer?: HostPort;
  private pending: Uint8Array[] = [];
  private readonly reg: RelayRegistration;
  /** The relay in use: datagrams go there, and only datagrams from there are taken. */
  private readonly choice: RelayChoice;
  private moving: Promise<boolean> | undefined;
  /** Replies (ACK, RETRY, ERR, MOVE) from the relay in use: one during a resolution cancels the move. */
  private replies = 0;
  private movedFrom: HostPort | undefined;
  private loneRelayLogged = false;
  private firstRegistration = Promise.withResolvers<void>();
  private closed = false;

  constructor(private readonly options: TunnelOptions) {
    this.choice = new RelayChoice(options.relay);
    // With one fixed address there is nowhere to move: no flag.
    const followMoves = (options.registration.followMoves ?? true) && this.choice.canMove;
    this.reg = new RelayRegistration(options.sessionId, { ...options.registration, followMoves }, {
      sendReg: (datagram) => this.sendToRelay(datagram, false),
      registered: ({ first, rttMs, attempts, retries }) => {
        this.stats.registrations++;
        this.stats.retries += retries;
        if (first) {
          const proof = retries > 0 ? ", address verified by RETRY" : "";
          options.log.info(`registered session ${options.sessionId} at ${this.relayText} in ${rttMs.toFixed(1)} ms (attempt ${attempts}${proof})`);
          this.movedFrom = undefined;
          this.flushPending();
          this.firstRegistration.resolve();
        } else if (this.movedFrom) {
          options.log.debug(`registered at ${this.relayText} (moved from ${formatHostPort(this.movedFrom)}) in ${rttMs.toFixed(1)} ms`);
          this.movedFrom = undefined;
        } else if (attempts > 1) {
          options.log.info(`re-registered with ${this.relayText} after ${attempts} attempts`);
        } else if (retries > 0) {
          // A new public address (NAT rebinding) or an expired cookie: the relay asked for proof again.
          options.log.info(`keepalive: ${this.relayText} asked for a new address proof (RETRY); re-verified in ${rttMs.toFixed(1)} ms`);
        } else {
          options.log.debug(`keepalive ACK in ${rttMs.toFixed(1)} ms`);
        }
      },
      lost: () => options.log.warn(`keepalive REG unanswered by ${this.relayText}; re-registering`),
      refused: ({ first, code }) => {
        const error = new RegistrationRefusedError(this.relayText, code);
        if (first) this.firstRegistration.reject(error);
        else options.log.warn(`${error.message}; will retry`);
      },
      unreachable: ({ tries }) => void this.giveUpOrMove(tries),
      silent: ({ unanswered }) => void this.moveOn(unanswered),
      moveOffered: (offer) => void this.considerMove(offer),
      moveRefused: ({ to, reason }) => {
        this.stats.movesRefused++;
        options.log.warn(`relay ${this.relayText} sent MOVE ${formatHostPort(to)}: not followed (${REFUSALS[reason]}); registering there without the move flag`);
      },
      moveIgnored: ({ to }) => {
        this.stats.movesIgnored++;
        options.log.debug(`ignored MOVE ${formatHostPort(to)} from ${this.relayText}: no REG with the move flag outstanding`);
      },
      moveFlagRefused: () => {
        this.choice.refusedMoveFlag(this.choice.current);
        options.log.info(`relay ${this.relayText} does not know the move flag (ERR bad-id); registering there without it`);
      },
    });
  }

  /** The relay in use (it changes when the tunnel moves; see `onRelayChange`). */
  get relay(): HostPort {
    return this.choice.current;
  }

  private get relayText(): string {
    return formatHostPort(this.choice.current);
  }

  /** Local address the app should use (listen mode) or the socket the server sees (forward mode). */
  get appAddress(): HostPort {
    if (!this.appSocket) throw new Error("tunnel not started");
    return { host: this.appSocket.hostname, port: this.appSocket.port };
  }

  get relayAddress(): HostPort {
    if (!this.relaySocket) throw new Error("tunnel not started");
    return { host: this.relaySocket.hostname, port: this.relaySocket.port };
  }

  /**
   * Resolve the relay (with a resolver), bind both sockets and register; resolves after the first
   * ACK. Throws the typed errors (RelayResolveError from the resolver).
   */
  async start(): Promise<void> {
    const { mode } = this.options;
    const candidates = await this.choice.first();
    this.options.log.debug(`relay addresses: ${candidates.map(formatHostPort).join(", ")}`);
    this.relaySocket = await Bun.udpSocket({
      hostname: this.choice.wildcard,
      port: this.options.relayLocalPort ?? 0,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, port, address) => this.onRelayDatagram(data, port, address),
        // ICMP errors (e.g. port unreachable while the relay restarts) surface here; REG retries handle them.
        // Bun 1.4 calls error(err) although its types say error(socket, err): accept both.
        error: (first: unknown, second?: unknown) => this.onSocketError("relay", first instanceof Error ? first : second),
      },
    });
    const bind = mode.kind === "listen" ? mode.local : { host: mode.target.host.includes(":") ? "::1" : "127.0.0.1", port: 0 };
    try {
      this.appSocket = await Bun.udpSocket({
        hostname: bind.host,
        port: bind.port,
        binaryType: "uint8array",
        socket: {
          data: (_s, data, port, address) => this.onAppDatagram(data, port, address),
          error: (first: unknown, second?: unknown) => this.onSocketError("app", first instanceof Error ? first : second),
        },
      });
    } catch (cause) {
      this.close();
      throw new Error(`cannot bind ${formatHostPort(bind)}: ${(cause as Error).message}`);
    }
    this.reg.start();
    try {
      await this.firstRegistration.promise;
    } catch (error) {
      this.close();
      throw error;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reg.stop();
    this.relaySocket?.close();
    this.appSocket?.close();
  }

  private onSocketError(side: "relay" | "app", error: unknown): void {
    this.stats.socketErrors++;
    // ICMP unreachable from the relay: it is down or restarting and will have forgotten us.
    // Re-register now (with backoff) instead of waiting for the next keepalive.
    if (side === "relay") this.reg.refresh();
    this.options.log.debug(`${side} socket: ${error instanceof Error ? error.message : String(error)}`);
  }

  /** The relay in use went silent: move to another address from a fresh resolution, if there is one. */
  private moveOn(unanswered: number): Promise<boolean> {
    if (!this.choice.canMove || this.closed) return Promise.resolve(false);
    this.moving ??= this.findAnotherRelay(unanswered).finally(() => (this.moving = undefined));
    return this.moving;
  }

  private async giveUpOrMove(tries: number): Promise<void> {
    if (await this.moveOn(tries)) return;
    this.firstRegistration.reject(new RelayUnreachableError(this.relayText, tries, this.choice.leftBehind()));
  }

  private async findAnotherRelay(unanswered: number): Promise<boolean> {
    const { log, sessionId } = this.options;
    const replies = this.replies;
    const starting = this.stats.registrations === 0;
    const next = await this.choice.next(starting);
    if (next.kind === "resolve-failed") {
      this.stats.resolveFailures++;
      log.warn(`relay ${this.relayText} is not answering, and resolving the relay failed (${next.error.message}); retrying both`);
      return false;
    }
    // An answer during the resolution: the relay is alive after all.
    if (this.closed || this.replies !== replies) return false;
    if (next.kind === "stay") {
      // Before the first ACK the outcome is the start's: registered, or the unreachable error.
      if (!this.loneRelayLogged && !starting) log.warn(`relay ${this.relayText} is not answering and no other relay address is known; retrying it`);
      this.loneRelayLogged = true;
      return false;
    }
    const { to } = next;
    const from = this.choice.current;
    const fromText = this.relayText;
    this.choice.moveTo(to);
    this.movedFrom = from;
    this.loneRelayLogged = false;
    this.stats.relayChanges++;
    log.warn(`relay ${fromText} stopped answering (${unanswered} REGs unanswered); moving session ${sessionId} to ${this.relayText}`);
    this.reg.restart({ moveFlag: this.choice.takesMoveFlag(to) });
    this.options.onRelayChange?.({ from, to, reason: "stopped-answering", unanswered });
    return true;
  }

  /** `MOVE <to>` answered our flagged REG: follow it to another of the relay's addresses, never elsewhere. */
  private async considerMove(offer: MoveOffer): Promise<void> {
    if (relayKey(offer.to) === relayKey(this.choice.current)) {
      this.reg.declineMove(offer.id, "same-relay");
      return;
    }
    const known = await this.choice.knows(offer.to);
    if (this.closed) return;
    if (known.kind !== "known") {
      if (known.kind === "resolve-failed") this.stats.resolveFailures++;
      this.reg.declineMove(offer.id, "unknown-relay");
      return;
    }
    // Declined meanwhile (its REG timed out) or overtaken by a failover: nothing left to decide.
    if (this.reg.pendingMove?.id !== offer.id) return;
    const from = this.choice.current;
    const fromText = this.relayText;
    this.choice.moveTo(offer.to);
    this.movedFrom = from;
    this.loneRelayLogged = false;
    this.stats.relayChanges++;
    this.stats.movesFollowed++;
    this.options.log.info(`relay ${fromText} moved session ${this.options.sessionId} to ${this.relayText}, its partner's relay`);
    this.reg.followMove(offer.id, { moveFlag: this.choice.takesMoveFlag(offer.to) });
    this.options.onRelayChange?.({ from, to: offer.to, reason: "moved", unanswered: 0 });
  }

  private onRelayDatagram(data: Uint8Array, port: number, address: string): void {
    const relay = this.choice.current;
    if (port !== relay.port || !sameHost(address, relay.host)) {
      if (parseMove(data) !== undefined) this.stats.movesIgnored++;
      else this.stats.strayDrops++;
      return;
    }
    if (this.reg.onRelayDatagram(data)) {
      this.replies++;
      this.loneRelayLogged = false;
      return;
    }
    this.stats.fromRelayPackets++;
    this.stats.fromRelayBytes += data.length;
    const to = this.options.mode.kind === "listen" ? this.appPeer : this.options.mode.target;
    if (!to) {
      this.stats.noAppDrops++;
      return;
    }
    if (!this.appSocket || !this.send(this.appSocket, "app", data, to)) this.stats.sendDrops++;
  }

  private onAppDatagram(data: Uint8Array, port: number, address: string): void {
    const mode = this.options.mode;
    if (mode.kind === "listen") {
      if (!this.appPeer || this.appPeer.port !== port || this.appPeer.host !== address) {
        this.appPeer = { host: address, port };
        this.options.log.debug(`app at ${formatHostPort(this.appPeer)}`);
      }
    } else if (port !== mode.target.port || !sameHost(address, mode.target.host)) {
      this.stats.strayDrops++;
      return;
    }
    if (!this.reg.registered && this.stats.registrations === 0) {
      // Before the first ACK the relay would drop our data as from an unknown source: queue it.
      if (this.pending.length < (this.options.maxPending ?? 64)) this.pending.push(data.slice());
      else this.stats.sendDrops++;
      return;
    }
    this.sendToRelay(data, true);
  }

  /**
   * Linux reports an ICMP error caused by an earlier datagram on the next send, which then is not
   * sent (Bun throws it). The error is consumed by that, so the datagram is sent once more.
   */
  private send(socket: Socket, side: "relay" | "app", data: Uint8Array, to: HostPort): boolean {
    for (let attempt = 0; ; attempt++) {
      try {
        return socket.send(data, to.port, to.host);
      } catch (error) {
        this.stats.socketErrors++;
        this.options.log.debug(`${side} socket: ${error instanceof Error ? error.message : String(error)}`);
        if (attempt > 0) return false;
      }
    }
  }

  private flushPending(): void {
    const queued = this.pending;
    this.pending = [];
    for (const data of queued) this.sendToRelay(data, true);
  }

  private sendToRelay(data: Uint8Array, counted: boolean): void {
    if (this.closed || !this.relaySocket) return;
    if (!this.send(this.relaySocket, "relay", data, this.choice.current)) this.stats.sendDrops++;
    else if (counted) {
      this.stats.toRelayPackets++;
      this.stats.toRelayBytes += data.length;
    }
  }
}
