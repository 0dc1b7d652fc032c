import type { udp } from "bun";
import { formatHostPort, type HostPort, sameHost } from "../net/address.ts";
import { RegistrationRefusedError, RelayUnreachableError } from "./errors.ts";
import { RelayChoice, type RelayResolver } from "./relay-addresses.ts";
import { RelayRegistration, type RegistrationSettings } from "./registration.ts";

/**
 * `listen`: the local app sends to `local`; we forward to the relay and send replies back to the
 * app's most recent address. `forward`: relayed datagrams go to the local server at `target` from
 * one local socket; whatever the server sends back to that socket goes to the relay.
 */
export type TunnelMode = { kind: "listen"; local: HostPort } | { kind: "forward"; target: HostPort };

export interface TunnelLogger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/** The tunnel left a relay that stopped answering; REGs and datagrams go to `to` from now on. */
export interface RelayChange {
  from: HostPort;
  to: HostPort;
  /** REGs in a row that `from` left unanswered. */
  unanswered: number;
}

export interface TunnelOptions {
  /**
   * The relay: one IP address, or a resolver (`relayResolver`) giving all its current addresses.
   * A resolver is called at start (the first address is used) and each time the relay in use stops
   * answering (`registration.silentAfter` REGs in a row), to pick another address to move to.
   */
  relay: HostPort | RelayResolver;
  sessionId: string;
  mode: TunnelMode;
  registration: RegistrationSettings;
  /** Local port of the relay-facing socket (0: any). */
  relayLocalPort?: number;
  /** App datagrams queued while the first registration is pending. */
  maxPending?: number;
  log: TunnelLogger;
  /** Each move to another relay address, as it happens (the registration there follows). */
  onRelayChange?(change: RelayChange): void;
}

export interface TunnelStats {
  toRelayPackets: number;
  toRelayBytes: number;
  fromRelayPackets: number;
  fromRelayBytes: number;
  registrations: number;
  /** RETRYs answered on the way to an ACK (return-routability proof the relay asked for). */
  retries: number;
  /** Relay datagrams dropped because no app address is known yet (listen mode). */
  noAppDrops: number;
  /** App datagrams dropped while unregistered (queue full) or refused by the socket. */
  sendDrops: number;
  strayDrops: number;
  /** Errors reported by the sockets (ICMP unreachable and the like). */
  socketErrors: number;
  /** Moves to another relay address after the one in use stopped answering. */
  relayChanges: number;
  /** Resolver calls that failed while looking for another relay (retried at the next unanswered REG). */
  resolveFailures: number;
}

type Socket = udp.Socket<"uint8array">;

export class RelayTunnel {
  readonly stats: TunnelStats = {
    toRelayPackets: 0,
    toRelayBytes: 0,
    fromRelayPackets: 0,
    fromRelayBytes: 0,
    registrations: 0,
    retries: 0,
    noAppDrops: 0,
    sendDrops: 0,
    strayDrops: 0,
    socketErrors: 0,
    relayChanges: 0,
    resolveFailures: 0,
  };
  private relaySocket?: Socket;
  private appSocket?: Socket;
  private appPeer?: HostPort;
  private pending: Uint8Array[] = [];
  private readonly reg: RelayRegistration;
  /** The relay in use: datagrams go there, and only datagrams from there are taken. */
  private readonly choice: RelayChoice;
  private moving: Promise<boolean> | undefined;
  /** Replies (ACK, RETRY, ERR) from the relay in use: one during a resolution cancels the move. */
  private replies = 0;
  private movedFrom: HostPort | undefined;
  private loneRelayLogged = false;
  private firstRegistration = Promise.withResolvers<void>();
  private closed = false;

  constructor(private readonly options: TunnelOptions) {
    this.choice = new RelayChoice(options.relay);
    this.reg = new RelayRegistration(options.sessionId, options.registration, {
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
    this.reg.restart();
    this.options.onRelayChange?.({ from, to, unanswered });
    return true;
  }

  private onRelayDatagram(data: Uint8Array, port: number, address: string): void {
    const relay = this.choice.current;
    if (port !== relay.port || !sameHost(address, relay.host)) {
      this.stats.strayDrops++;
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
