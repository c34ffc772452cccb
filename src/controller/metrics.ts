// Prometheus metrics of the controller (prom-client, its own registry).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface DropCounter {
  chain: string;
  comment: string;
  packets: number;
  bytes: number;
}

/** `policy:label:shop/web` -> `label:shop/web`; `isolated-by:a,b` -> `a,b`; moat's own rules keep their name. */
export function policyOfComment(comment: string): string {
  if (comment.startsWith('policy:')) return comment.slice('policy:'.length);
  if (comment.startsWith('isolated-by:')) return comment.slice('isolated-by:'.length);
  if (comment.startsWith('allowlist:')) return comment.slice('allowlist:'.length);
  return comment || 'unknown';
}

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileDuration = new Histogram({
    name: 'moat_reconcile_duration_seconds',
    help: 'Time to recompute and apply the ruleset, by trigger',
    labelNames: ['trigger', 'mode'],
    buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly eventToEnforced = new Histogram({
    name: 'moat_event_to_enforced_seconds',
    help: 'From a Docker event (its engine timestamp) to its rules being in the kernel',
    buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly rules = new Gauge({ name: 'moat_ruleset_rules', help: 'Rules in the applied ruleset', registers: [this.registry] });
  readonly chains = new Gauge({ name: 'moat_ruleset_chains', help: 'Chains in the applied ruleset', registers: [this.registry] });
  readonly setElements = new Gauge({ name: 'moat_ruleset_set_elements', help: 'Set and verdict-map elements in the applied ruleset', registers: [this.registry] });
  readonly endpoints = new Gauge({ name: 'moat_endpoints', help: 'Containers known to the controller', registers: [this.registry] });
  readonly applies = new Counter({ name: 'moat_applies_total', help: 'Applies to the kernel, by mode', labelNames: ['mode'], registers: [this.registry] });
  readonly applyErrors = new Counter({ name: 'moat_apply_errors_total', help: 'Applies that failed (the kernel kept its previous ruleset)', registers: [this.registry] });
  readonly driftRepairs = new Counter({ name: 'moat_drift_repairs_total', help: 'Times the kernel differed from the applied ruleset and was restored', labelNames: ['kind'], registers: [this.registry] });
  readonly policyReloads = new Counter({ name: 'moat_policy_reloads_total', help: 'Policy reloads, by result', labelNames: ['result'], registers: [this.registry] });
  readonly policyValid = new Gauge({ name: 'moat_policy_valid', help: '1 when the policy files on disk are valid; 0 when the previous good policy is kept', registers: [this.registry] });
  readonly dockerEvents = new Counter({ name: 'moat_docker_events_total', help: 'Docker events received', labelNames: ['type', 'action'], registers: [this.registry] });
  readonly dockerConnected = new Gauge({ name: 'moat_docker_connected', help: '1 while the Docker event stream is connected', registers: [this.registry] });
  readonly dockerReconnects = new Counter({ name: 'moat_docker_reconnects_total', help: 'Reconnections to the Docker event stream', registers: [this.registry] });
  readonly violations = new Gauge({ name: 'moat_violations', help: 'Current violations (flows the intent forbids but topology exposes), by kind', labelNames: ['kind'], registers: [this.registry] });
  readonly compiles = new Counter({ name: 'moat_compiles_total', help: 'Plans compiled, by mode: delta (only the changed containers) or full', labelNames: ['mode'], registers: [this.registry] });
  readonly idleGc = new Counter({ name: 'moat_idle_gc_seconds_total', help: 'Time spent collecting the young generation between events, off the event path (controller/gc.ts)', registers: [this.registry] });
  readonly drops: Gauge<'policy' | 'chain'>;

  constructor(readDrops: () => Promise<DropCounter[]>, defaultMetrics = true) {
    // The event-loop lag histogram samples with a libuv timer: prom-client's default (10 ms) wakes an
    // idle controller 100 times a second (measured: ~0.7% of a core doing nothing). 500 ms still
    // shows a stalled loop, at 2 wake-ups a second.
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'moat_process_', eventLoopMonitoringPrecision: 500 });
    this.drops = new Gauge({
      name: 'moat_dropped_packets',
      help: 'Packets dropped by moat, per policy (from the rules\' counters)',
      labelNames: ['policy', 'chain'],
      registers: [this.registry],
      collect: async () => {
        let list: DropCounter[] = [];
        try {
          list = await readDrops();
        } catch {
          return;
        }
        this.drops.reset();
        const sum = new Map<string, { policy: string; chain: string; packets: number }>();
        for (const d of list) {
          const policy = policyOfComment(d.comment);
          const k = `${policy}\u0000${d.chain}`;
          const cur = sum.get(k) ?? { policy, chain: d.chain, packets: 0 };
          cur.packets += d.packets;
          sum.set(k, cur);
        }
        for (const v of sum.values()) this.drops.set({ policy: v.policy, chain: v.chain }, v.packets);
      },
    });
  }
}
