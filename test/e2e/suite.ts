import { afterAll, beforeAll } from "bun:test";
import { USE_IPTABLES, workDir, type WorkDir } from "./env.ts";
import { ProcSet } from "./procs.ts";
import { Topology } from "./topology.ts";

export interface NatSuite {
  topo: Topology;
  procs: ProcSet;
  /** The suite's key, certificate and scratch directory (after beforeAll). */
  work(): WorkDir;
}

/**
 * The two-NAT topology, processes and work directory of one e2e suite: built before its tests,
 * torn down after them, and also on SIGINT/SIGTERM or exit so no namespace outlives a run.
 * Call inside a describe block; hooks the suite adds later run after this setup.
 */
export function natSuite(prefix: string): NatSuite {
  const topo = new Topology(`${prefix}${process.pid}`);
  const procs = new ProcSet();
  let work: WorkDir | undefined;
  const teardown = () => {
    procs.killAll();
    topo.destroy();
    work?.remove();
    work = undefined;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    teardown();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  beforeAll(() => {
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    process.once("exit", teardown);
    topo.build(USE_IPTABLES);
    work = workDir();
  });
  afterAll(() => {
    teardown();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("exit", teardown);
  });
  return {
    topo,
    procs,
    work: () => {
      if (!work) throw new Error("the e2e work directory exists only while the suite runs");
      return work;
    },
  };
}
