import { VERSION } from "../version.ts";
import type { DataPlane, SocketBufferSizes } from "../dataplane/types.ts";
import type { FleetStats } from "../fleet/coordinator.ts";
import { BRIDGE_REJECTIONS } from "../fleet/bridge.ts";
import { DropReason, RefusalCode } from "../protocol/errors.ts";
import type { Relay } from "../relay.ts";
import type { SessionEvent } from "../sessions/types.ts";
import type { StunCounters } from "../discovery/responder.ts";
import { DIRECTIONS } from "./directions.ts";
import type { EventLoopLagSnapshot } from "./event-loop-lag.ts";
import { ExpositionWriter, type Labels } from "./exposition.ts";
import type { SaveReport } from "../state/incremental-save.ts";
import { writeProcessMetrics } from "./process-metrics.ts";

/** Counters kept outside the relay (state saving, config reloads). */
export interface OperationsCounters {
  sessionsRestored: number;
  stateSaves: { ok: number; error: number };
  /** Wall-clock seconds of the last successful save, 0 before the first. */
  stateLastSaveSeconds: number;
  reloads: { ok: number; error: number };
}

export function emptyOperationsCounters(): OperationsCounters {
  return { sessionsRestored: 0, stateSaves: { ok: 0, error: 0 }, stateLastSaveSeconds: 0, reloads: { ok: 0, error: 0 } };
}

export interface RelayMetricsSource {
  relay: Relay;
  /** The plane as created (for its own counters and native details). */
  plane: DataPlane;
  operations: OperationsCounters;
  startedAtSeconds: number;
  /** Token failures by reason, when authentication is configured. */
  authFailures?: Record<string, number>;
  /** Fleet membership, when the relay is part of one. */
  fleet?: FleetStats;
  /** State-file rows skipped at restore, by reason, when a state file is in use. */
  stateRowsSkipped?: Partial<Record<string, number>>;
  /** The state file's rows and what the last save did, when a state file is in use. */
  stateFile?: { readonly fileRows: number; readonly lastSave: SaveReport | undefined };
  /** STUN Binding requests by outcome, when STUN is on. */
  stun?: StunCounters;
  /** Event-loop lag, when a monitor runs (an EventLoopLagMonitor, started with the relay). */
  eventLoop?: { snapshot(): EventLoopLagSnapshot };
}

interface NativeDetails {
  nativeInfo(): { workers: number; gro: boolean; gso: boolean };
}

/**
 * The whole exposition, computed at scrape time from the relay's own counters: nothing on the
 * forwarding path is touched. Label values come from fixed sets (reasons, kinds, directions).
 */
export function renderRelayMetrics(src: RelayMetricsSource): string {
  const { relay, plane, operations: ops } = src;
  const table = relay.table;
  const stats = table.stats;
  const planeCounters = plane.counters();
  const paired = table.pairedCount;
  const directions = relay.forwardedByDirection();
  const w = new ExpositionWriter();

  w.family("quic_relay_build_info", "gauge", "Version of the relay and of the Bun runtime", [
    [{ version: VERSION, bun: Bun.version }, 1],
  ]);
  w.family("quic_relay_dataplane_info", "gauge", "Data plane in use", [[dataplaneLabels(plane), 1]]);
  w.single("quic_relay_start_time_seconds", "gauge", "Unix time the relay started", src.startedAtSeconds);

  w.family("quic_relay_sessions_active", "gauge", "Sessions in the table, by whether both peers registered", [
    [{ state: "paired" }, paired],
    [{ state: "waiting" }, table.sessionCount - paired],
  ]);
  w.single("quic_relay_peers_active", "gauge", "Registered peer addresses", table.peerCount);
  w.single("quic_relay_sessions_compact", "gauge", "Sessions of the table kept packed in the compact store (settled and idle for 100 ms)", table.compactSessionCount);
  w.single("quic_relay_sessions_created_total", "counter", "Sessions created by a first REG", stats.sessionsCreated);
  w.single("quic_relay_sessions_paired_total", "counter", "Sessions that got their second peer", stats.sessionsPaired);
  w.single("quic_relay_sessions_expired_total", "counter", "Sessions removed after the idle timeout", stats.sessionsExpired);
  w.single("quic_relay_sessions_restored_total", "counter", "Sessions restored from the state file at startup", ops.sessionsRestored);
  w.family(
    "quic_relay_rebinds_total",
    "counter",
    "Peers followed to a new address, by evidence (reg: REG from a new port; cid: QUIC connection ID; quiet: data from a new port after silence)",
    Object.entries(stats.rebinds).map(([kind, n]) => [{ kind }, n] as [Labels, number]),
  );

  w.family(
    "quic_relay_forwarded_datagrams_total",
    "counter",
    "Datagrams forwarded by data-plane routes, by direction (first = the peer that created the session)",
    DIRECTIONS.map((d) => [{ direction: d }, directions[d].packets] as [Labels, number]),
  );
  w.family(
    "quic_relay_forwarded_bytes_total",
    "counter",
    "Bytes forwarded by data-plane routes, by direction",
    DIRECTIONS.map((d) => [{ direction: d }, directions[d].bytes] as [Labels, number]),
  );
  w.family("quic_relay_dataplane_datagrams_total", "counter", "Datagrams the data plane received, by path", [
    [{ path: "forwarded" }, planeCounters.forwardedPackets],
    [{ path: "control" }, planeCounters.controlPackets],
  ]);
  w.single("quic_relay_dataplane_forwarded_bytes_total", "counter", "Bytes the data plane forwarded (all routes)", planeCounters.forwardedBytes);
  w.single(
    "quic_relay_control_forwarded_datagrams_total",
    "counter",
    "Datagrams the control plane forwarded itself, not a data-plane route (held early datagrams, first datagrams before the routes, peers without a route)",
    relay.controlForwarded.datagrams,
  );
  w.single("quic_relay_control_forwarded_bytes_total", "counter", "Bytes the control plane forwarded itself", relay.controlForwarded.bytes);

  w.family(
    "quic_relay_refusals_total",
    "counter",
    "REGs refused, by reason (the code sent after ERR)",
    Object.values(RefusalCode).map((reason) => [{ reason }, stats.refusals[reason] ?? 0] as [Labels, number]),
  );
  const drops: [Labels, number][] = [
    [{ reason: DropReason.UnknownSource }, stats.drops[DropReason.UnknownSource] ?? 0],
    [{ reason: DropReason.SilentRefusal }, stats.drops[DropReason.SilentRefusal] ?? 0],
    [{ reason: "oversize" }, planeCounters.oversize],
    [{ reason: "control-queue-full" }, planeCounters.controlQueueDrops],
    [{ reason: DropReason.EarlyOverflow }, stats.drops[DropReason.EarlyOverflow] ?? 0],
    [{ reason: DropReason.EarlyExpired }, stats.drops[DropReason.EarlyExpired] ?? 0],
    [{ reason: DropReason.EarlyEvicted }, stats.drops[DropReason.EarlyEvicted] ?? 0],
    [{ reason: DropReason.RelayLine }, stats.drops[DropReason.RelayLine] ?? 0],
    [{ reason: DropReason.RelayAddress }, stats.drops[DropReason.RelayAddress] ?? 0],
    [{ reason: DropReason.RelayPair }, stats.drops[DropReason.RelayPair] ?? 0],
    [{ reason: DropReason.RetryBudget }, stats.drops[DropReason.RetryBudget] ?? 0],
    [{ reason: DropReason.CidDisputed }, stats.drops[DropReason.CidDisputed] ?? 0],
    [{ reason: DropReason.StandInCheck }, stats.drops[DropReason.StandInCheck] ?? 0],
    [{ reason: "unanswered" }, planeCounters.unansweredDrops + (src.fleet?.bridge.unanswered ?? 0)],
  ];
  w.family("quic_relay_drops_total", "counter", "Datagrams dropped without a reply, by reason", drops);
  w.single("quic_relay_challenges_total", "counter", "REGs answered with RETRY and a cookie (return-routability challenge)", stats.challenges);
  w.family(
    "quic_relay_cookie_failures_total",
    "counter",
    "REG cookies that did not check out, by reason (each answered with a new challenge)",
    Object.entries(relay.cookieFailures).map(([reason, n]) => [{ reason }, n] as [Labels, number]),
  );
  w.family(
    "quic_relay_log_lines_suppressed_total",
    "counter",
    "Lifecycle log lines held back by the per-event rate limit, by event",
    LOGGED_EVENTS.map((event) => [{ event }, relay.logSuppressed[event] ?? 0] as [Labels, number]),
  );
  if (src.authFailures) {
    w.family(
      "quic_relay_auth_failures_total",
      "counter",
      "REG tokens rejected, by reason (each also counts as refusal reason auth)",
      Object.entries(src.authFailures).map(([reason, n]) => [{ reason }, n] as [Labels, number]),
    );
  }
  if (src.fleet) {
    w.single("quic_relay_fleet_directory_reachable", "gauge", "1 when the fleet's session directory answers", src.fleet.reachable ? 1 : 0);
    w.single("quic_relay_fleet_bridged_sessions", "gauge", "Sessions bridged to another relay right now", src.fleet.bridgedNow);
    w.single("quic_relay_fleet_bridged_total", "counter", "Sessions bridged to another relay since start", src.fleet.bridgedTotal);
    w.single("quic_relay_fleet_announced_sessions", "gauge", "Sessions this relay has entered in the directory", src.fleet.announced);
    w.single("quic_relay_fleet_directory_failovers_total", "counter", "Times the directory's Redis primary changed (Sentinel)", src.fleet.directory.failovers);
    w.family(
      "quic_relay_fleet_bridge_rejected_total",
      "counter",
      "Relay-to-relay datagrams refused, by reason (not from a member, forged, replayed, stale, malformed)",
      BRIDGE_REJECTIONS.map((reason) => [{ reason }, src.fleet!.bridge.rejected[reason] ?? 0] as [Labels, number]),
    );
    const bridge = src.fleet.bridge;
    w.family(
      "quic_relay_fleet_bridge_datagrams_total",
      "counter",
      "Peer datagrams sent to other relays in bridge frames and delivered from them, by who carried them: the data plane's threads or the control plane",
      [
        [{ direction: "sent", path: "data-plane" }, bridge.dataPlane.sent],
        [{ direction: "sent", path: "control" }, bridge.sent - bridge.dataPlane.sent],
        [{ direction: "delivered", path: "data-plane" }, bridge.dataPlane.delivered],
        [{ direction: "delivered", path: "control" }, bridge.delivered - bridge.dataPlane.delivered],
      ],
    );
    w.single("quic_relay_fleet_stand_ins_replaced_total", "counter", "Peers that registered here after their relay died and took their stand-in's place", stats.standInsReplaced);
    w.family(
      "quic_relay_fleet_move_flag_regs_total",
      "counter",
      "REGs with the move flag for a session new here: sent to the partner's relay (moved), registered here after a directory lookup (here), registered here without one (unlooked: directory down or lookup budget spent)",
      Object.entries(src.fleet.placement).map(([outcome, n]) => [{ outcome }, n] as [Labels, number]),
    );
    w.single("quic_relay_fleet_liveness_pings_total", "counter", "Liveness pings sent to other relays", src.fleet.liveness.pings);
    w.single("quic_relay_fleet_relays_found_gone_total", "counter", "Liveness checks that found a relay gone (no answer)", src.fleet.liveness.gone);
  }
  if (src.stun) {
    const s = src.stun;
    w.family("quic_relay_stun_requests_total", "counter", "STUN Binding requests from non-peers, by outcome (paired peers' STUN is forwarded, not counted here)", [
      [{ outcome: "answered" }, s.answered],
      [{ outcome: "unknown-attribute" }, s.unknownAttribute],
      [{ outcome: "rate-limited" }, s.rateLimited],
      [{ outcome: "budget" }, s.budget],
      [{ outcome: "malformed" }, s.malformed],
      [{ outcome: "change-refused" }, s.changeRefused],
    ]);
    w.family("quic_relay_stun_bytes_total", "counter", "Bytes of STUN requests received and of answers sent", [
      [{ direction: "received" }, s.bytesIn],
      [{ direction: "sent" }, s.bytesOut],
    ]);
  }
  w.single("quic_relay_send_errors_total", "counter", "Datagrams the socket failed to send", planeCounters.sendErrors);

  w.single("quic_relay_early_datagrams_held_total", "counter", "Early datagrams held for a partner that had not registered yet", stats.heldAccepted);
  w.single("quic_relay_early_datagrams_delivered_total", "counter", "Held early datagrams delivered after pairing", stats.heldDelivered);
  // Early datagrams dropped are counted once, in quic_relay_drops_total{reason="early-*"}.
  w.single("quic_relay_early_held_bytes", "gauge", "Bytes of early datagrams held right now", table.indexSizes().heldBytes ?? 0);

  w.single("quic_relay_internal_errors_total", "counter", "Errors raised while handling a datagram (bugs)", relay.internalErrors);
  w.family("quic_relay_state_saves_total", "counter", "Session table saves to the state file, by result", [
    [{ result: "ok" }, ops.stateSaves.ok],
    [{ result: "error" }, ops.stateSaves.error],
  ]);
  if (src.stateRowsSkipped) {
    w.family(
      "quic_relay_state_rows_skipped_total",
      "counter",
      "State-file rows not restored because they were malformed, by reason",
      Object.entries(src.stateRowsSkipped).map(([reason, n]) => [{ reason }, n ?? 0] as [Labels, number]),
    );
  }
  w.single("quic_relay_state_last_save_timestamp_seconds", "gauge", "Unix time of the last successful state save", ops.stateLastSaveSeconds);
  if (src.stateFile) {
    const last = src.stateFile.lastSave;
    w.single("quic_relay_state_file_rows", "gauge", "Rows in the state file: sessions, removals and older rows not compacted yet", src.stateFile.fileRows);
    w.family("quic_relay_state_last_save_rows", "gauge", "Rows the last save wrote (changed sessions), removed (gone sessions), copied and dropped (compaction)", [
      [{ kind: "written" }, last?.written ?? 0],
      [{ kind: "removed" }, last?.removed ?? 0],
      [{ kind: "copied" }, last?.copied ?? 0],
      [{ kind: "dropped" }, last?.dropped ?? 0],
    ]);
    w.single("quic_relay_state_last_save_duration_seconds", "gauge", "Length of the last save, pauses included", (last?.durationMs ?? 0) / 1000);
    w.single("quic_relay_state_last_save_longest_chunk_seconds", "gauge", "Longest time the last save held the event loop at once", (last?.longestChunkMs ?? 0) / 1000);
  }
  w.family("quic_relay_config_reloads_total", "counter", "SIGHUP reloads, by result", [
    [{ result: "ok" }, ops.reloads.ok],
    [{ result: "error" }, ops.reloads.error],
  ]);

  const buffers = socketBuffersOf(plane);
  if (buffers) {
    w.single("quic_relay_socket_buffer_requested_bytes", "gauge", "Socket receive and send buffer size asked for (--socket-buffer-bytes)", buffers.asked);
    w.family(
      "quic_relay_socket_buffer_bytes",
      "gauge",
      "Socket buffer the kernel granted, by direction, in the units of --socket-buffer-bytes (half of what getsockopt reports on Linux)",
      [
        [{ direction: "receive" }, buffers.receive],
        [{ direction: "send" }, buffers.send],
      ],
    );
  }
  if (src.eventLoop) {
    const lag = src.eventLoop.snapshot();
    w.single(
      "quic_relay_event_loop_lag_max_seconds",
      "gauge",
      `Largest event-loop lag in the last ${lag.windowSeconds} s (how late a timer of the JS thread fired)`,
      lag.maxSeconds,
    );
    w.histogram("quic_relay_event_loop_lag_seconds", "Event-loop lag samples: how late a periodic timer of the JS thread fired", lag.histogram);
  }

  writeProcessMetrics(w, src.startedAtSeconds);
  return w.toString();
}

const LOGGED_EVENTS = ["created", "paired", "rebound", "moved", "refused", "expired", "relay-pair", "cid-dispute"] as const satisfies readonly SessionEvent["kind"][];

function socketBuffersOf(plane: DataPlane): SocketBufferSizes | undefined {
  try {
    return plane.socketBuffers?.();
  } catch {
    return undefined;
  }
}

function dataplaneLabels(plane: DataPlane): Labels {
  const labels: Labels = { kind: plane.kind };
  const native = plane as Partial<NativeDetails>;
  if (plane.kind === "native" && typeof native.nativeInfo === "function") {
    try {
      const info = native.nativeInfo();
      labels.workers = String(info.workers);
      labels.gro = String(info.gro);
      labels.gso = String(info.gso);
    } catch {
      // Not started or already closed: the kind alone is still true.
    }
  }
  return labels;
}
