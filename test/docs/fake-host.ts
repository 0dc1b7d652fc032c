/**
 * A stand-in for the VM of docs/deploy.md, in a temporary directory, for running its commands in CI:
 *
 * - paths: `/usr/local/bin/`, `/etc/`, `/tmp/`, `/var/lib/` in the commands, the unit and the
 *   config are moved under the directory (`localize`), and the ports 4433 and 9464 to free ones,
 *   so nothing on the machine is touched and parallel runs do not meet;
 * - the binary: `quic-relay` is a script that runs `bun src/cli/main.ts` of this checkout;
 * - `sudo` runs its command (CI is root already); `systemctl` runs the unit's ExecStart with its
 *   Environment= lines and StateDirectory= as a background process, its output as the journal;
 *   `journalctl -u UNIT [-n N] -o cat` prints that journal. What the stand-ins do not understand,
 *   they refuse (exit 2), so a doc that starts using more of them fails here instead of passing.
 * - real tools otherwise: coreutils' install, grep, systemd-analyze, curl.
 *
 * Not emulated: DynamicUser= and the sandboxing (the process runs as the test's user), Restart=.
 * test/deploy/unit.test.ts checks the unit itself with systemd-analyze.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const REPO = join(import.meta.dir, "../..");
const MAIN = join(REPO, "src/cli/main.ts");

export interface FakeHost {
  root: string;
  relayPort: number;
  metricsPort: number;
  /** The doc's text as it runs here: paths under the root, the ports replaced. */
  localize(text: string): string;
  /** Puts a file where section 1's scp would: the binary, or a file of this repository. */
  deliver(source: string, as?: string): void;
  /** Runs a shell block there: bash with -e and pipefail, the stand-ins first on PATH. */
  run(script: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The unit's process id, while it runs. */
  pid(unit: string): number | undefined;
  cleanup(): Promise<void>;
}

export async function createFakeHost(ports: { relay: number; metrics: number }): Promise<FakeHost> {
  const root = mkdtempSync(join(tmpdir(), "quic-relay-docs-host-"));
  for (const dir of ["bin", "home", "tmp", "usr/local/bin", "etc/systemd/system", "var/lib", "var/log/journal", "run/fake-systemd"]) {
    mkdirSync(join(root, dir), { recursive: true });
  }
  const localize = (text: string) =>
    text
      .replace(/(^|[\s"'=:(])(\/usr\/local\/bin\/|\/etc\/|\/tmp\/|\/var\/lib\/)/gm, (_m, before: string, path: string) => `${before}${root}${path}`)
      .replace(/\b4433\b/g, String(ports.relay))
      .replace(/\b9464\b/g, String(ports.metrics));
  const script = (name: string, body: string) => {
    const path = join(root, "bin", name);
    writeFileSync(path, body.replaceAll("__ROOT__", root));
    chmodSync(path, 0o755);
  };
  script("sudo", SUDO);
  script("systemctl", SYSTEMCTL);
  script("journalctl", JOURNALCTL);
  const binary = `#!/bin/sh\n# quic-relay from the checkout under test\nexec bun ${MAIN} "$@"\n`;

  const host: FakeHost = {
    root,
    relayPort: ports.relay,
    metricsPort: ports.metrics,
    localize,
    deliver(source, as) {
      const target = join(root, "tmp", as ?? source.split("/").pop()!);
      if (source.startsWith("deploy/")) {
        writeFileSync(target, localize(readFileSync(join(REPO, source), "utf8")));
      } else if (/(^|\/)quic-relay(-new)?$/.test(source)) {
        writeFileSync(target, binary);
      } else {
        throw new Error(`the test does not know how to deliver '${source}'`);
      }
    },
    async run(text) {
      const proc = Bun.spawn(["bash", "-e", "-o", "pipefail", "-c", text], {
        cwd: join(root, "home"),
        env: { ...process.env, PATH: `${join(root, "bin")}:${join(root, "usr/local/bin")}:${process.env.PATH}`, HOME: join(root, "home") },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      return { code, stdout, stderr };
    },
    pid(unit) {
      const file = join(root, "run/fake-systemd", `${unit}.pid`);
      return existsSync(file) ? Number(readFileSync(file, "utf8")) : undefined;
    },
    async cleanup() {
      // Stops what the stand-in systemctl started (by the pid it recorded), then removes the host.
      for (const unit of ["quic-relay"]) {
        if (host.pid(unit) !== undefined) await host.run(`systemctl stop ${unit}`);
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
  return host;
}

const SUDO = `#!/usr/bin/env bash
# sudo for the docs test: the test runs as the user it runs as; VAR=value words pass through env.
exec env "$@"
`;

const SYSTEMCTL = `#!/usr/bin/env bash
# systemctl for the docs test (test/docs/fake-host.ts): one process per unit, no systemd.
set -euo pipefail
root=__ROOT__
units=$root/etc/systemd/system
journal=$root/var/log/journal
run=$root/run/fake-systemd
verb=\${1:?usage: systemctl VERB [UNIT...]}; shift
now=false; names=()
for arg in "$@"; do
  case $arg in
    --now) now=true ;;
    --no-pager|--quiet|-q) ;;
    -*) echo "fake systemctl: option $arg is not emulated" >&2; exit 2 ;;
    *) names+=("\${arg%.service}") ;;
  esac
done
unit_file() {
  local f=$units/$1.service
  [[ -f $f ]] || { echo "Unit $1.service not found." >&2; exit 5; }
  echo "$f"
}
pid_of() { cat "$run/$1.pid" 2>/dev/null || true; }
# Alive: signalable and not a zombie (an exited child of a stand-in that is gone may linger as one).
alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null && ! grep -qE '^State:[[:space:]]+Z' "/proc/$1/status" 2>/dev/null; }
start() {
  local name=$1 f pid from
  f=$(unit_file "$name")
  if alive "$(pid_of "$name")"; then return 0; fi
  local exec_line; exec_line=$(sed -n 's/^ExecStart=//p' "$f")
  local -a envs=(); mapfile -t envs < <(sed -n 's/^Environment=//p' "$f")
  local dir; for dir in $(sed -n 's/^StateDirectory=//p' "$f"); do install -d -m 0700 "$root/var/lib/$dir"; done
  local log=$journal/$name.log; touch "$log"
  from=$(( $(wc -l < "$log") + 1 ))
  # shellcheck disable=SC2086 # ExecStart is split into words, as systemd does
  env "\${envs[@]}" $exec_line </dev/null >>"$log" 2>&1 &
  pid=$!
  echo "$pid" > "$run/$name.pid"
  # Type=simple: systemctl returns once the process runs. The stand-in waits for the startup line
  # (or the exit), so the next command meets a relay that answers, or a failed unit.
  local deadline=$((SECONDS + 30))
  until tail -n "+$from" "$log" | grep -q 'quic-relay listening on udp'; do
    if ! alive "$pid"; then
      rm -f "$run/$name.pid"
      echo "Job for $name.service failed because the control process exited with error code." >&2
      return 1
    fi
    if (( SECONDS >= deadline )); then echo "fake systemctl: $name did not start within 30 s" >&2; return 1; fi
    sleep 0.05
  done
}
stop() {
  local name=$1 pid; pid=$(pid_of "$name")
  if ! alive "$pid"; then rm -f "$run/$name.pid"; return 0; fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 15))   # TimeoutStopSec=15s
  while alive "$pid"; do
    if (( SECONDS >= deadline )); then kill -KILL "$pid"; break; fi
    sleep 0.05
  done
  rm -f "$run/$name.pid"
}
case $verb in
  daemon-reload) ;;
  enable) for n in "\${names[@]}"; do unit_file "$n" >/dev/null; if $now; then start "$n"; fi; done ;;
  start) for n in "\${names[@]}"; do start "$n"; done ;;
  stop) for n in "\${names[@]}"; do stop "$n"; done ;;
  restart) for n in "\${names[@]}"; do stop "$n"; start "$n"; done ;;
  reload) for n in "\${names[@]}"; do p=$(pid_of "$n"); alive "$p" || { echo "$n.service is not active, cannot reload." >&2; exit 1; }; kill -HUP "$p"; done ;;
  is-active) for n in "\${names[@]}"; do if alive "$(pid_of "$n")"; then echo active; else echo inactive; exit 3; fi; done ;;
  *) echo "fake systemctl: '$verb' is not emulated" >&2; exit 2 ;;
esac
`;

const JOURNALCTL = `#!/usr/bin/env bash
# journalctl for the docs test: the unit's output as the stand-in systemctl collected it.
set -euo pipefail
journal=__ROOT__/var/log/journal
unit=""; lines=""; cat=false
while (($#)); do
  case $1 in
    -u) unit=\${2%.service}; shift 2 ;;
    -n) lines=$2; shift 2 ;;
    -o) [[ $2 == cat ]] || { echo "fake journalctl: only -o cat is emulated" >&2; exit 2; }; cat=true; shift 2 ;;
    --no-pager) shift ;;
    *) echo "fake journalctl: $1 is not emulated" >&2; exit 2 ;;
  esac
done
# Without -o cat, journald puts a date, host and process before each line: the docs show -o cat.
[[ -n $unit ]] && $cat || { echo "fake journalctl: only -u UNIT ... -o cat is emulated" >&2; exit 2; }
log=$journal/$unit.log
[[ -f $log ]] || { echo "-- No entries --"; exit 0; }
if [[ -n $lines ]]; then tail -n "$lines" "$log"; else cat "$log"; fi
`;
