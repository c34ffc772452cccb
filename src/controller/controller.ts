// The controller (`moat run`): keeps moat's kernel rules in step with Docker and the policy files.
//
//  events ──► pending changes ──(debounce)──► inspect what changed ──► compile ──► one transaction
//  timers ──► full resync (Docker re-read, kernel compared and repaired) and drift checks
//  policy files changed / SIGHUP ──► reload; an invalid policy keeps the previous good one
//
// Work is serialised on one queue, so an apply never overlaps another. The kernel is only ever
// changed by whole `nft -f` transactions (or iptables-restore), so a SIGKILL at any moment leaves
// either the old or the new ruleset, and the fail-closed rule keeps unknown addresses dropped
// while the controller is away.
import { createHash } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { NftBackend, dropCounters } from '../enforce/backends/nft/backend.js';
import { IptablesBackend } from '../enforce/backends/iptables/backend.js';
import { applyIncremental, applyPlan, backendFor, type EnforceOptions, type IncrementalChanges } from '../enforce/index.js';
import { DEFAULT_STATE_DIR, saveApplied as saveAppliedRecord } from '../enforce/state.js';
import { CompileSession } from '../enforce/compile/session.js';
import { currentPlanShape, isIngressMap, type RulesetPlan } from '../enforce/plan-model.js';
import { UserError, formatDiagnostic, type Diagnostic } from '../model/diagnostics.js';
import { emptyPolicySet, mergePolicySets, type PolicySet } from '../model/ir.js';
import { endpointDisplayName, type World } from '../model/world.js';
import { LabelCompiler } from '../policy/labels/index.js';
import { loadPolicyFile, policyFiles } from '../policy/load.js';
import { parseDockerHost } from '../sources/docker/index.js';
import { describeDrift, detectDrift, restoreDockerUserJump, type DriftReport } from './drift.js';
import { sharedNetlink } from '../enforce/backends/nft/netlink.js';
import { planSummary, type RulesetSummary } from '../enforce/summary.js';
import { collectYoung } from './gc.js';
import { run } from '../enforce/exec.js';
import { DockerEventStream, isWatched, type DockerEvent, type Endpoint as HttpEndpoint } from './events.js';
import { LiveWorld } from './live-world.js';
import { ControllerMetrics, type DropCounter } from './metrics.js';
import { withFailClosedPools } from './pools.js';
import { StateStore } from './store.js';
import { Debouncer } from './timing.js';
import { findViolations, type Violation } from './violations.js';

export interface ControllerOptions {
  dockerHost?: string;
  /** Only this Compose project's containers and networks. */
  project?: string;
  policyPaths: string[];
  /** Compile security.* labels found on containers (default true). */
  labels?: boolean;
  enforce: EnforceOptions;
  stateDir: string;
  /** Full resync period (default 60 s); 0 disables the timer (start and reconnects still resync). */
  resyncIntervalMs?: number;
  /** Kernel drift check period (default 10 s); 0 disables it (resyncs still check). */
  driftIntervalMs?: number;
  debounceMs?: number;
  maxDebounceMs?: number;
  /** Watch policy files for changes (default true). */
  watchPolicies?: boolean;
  /** Address pools kept fail-closed even before their networks exist. */
  failClosedPools?: string[];
  logger: Logger;
  /** Skip process-wide default metrics (tests running several controllers in one process). */
  defaultMetrics?: boolean;
}

export interface EndpointStatus {
  id: string;
  name: string;
  addresses: string[];
  enforced: boolean;
  since?: string;
  ingressChain?: string;
  egressChain?: string;
}

interface Pending {
  containers: Set<string>;
  removed: Set<string>;
  networks: Set<string>;
  /** Engine timestamps (ns) of the events in this batch, for the latency histogram. */
  eventTimes: number[];
}

const VERSION = '0.1.0';

export class Controller {
  readonly metrics: ControllerMetrics;
  readonly store: StateStore;
  private readonly log: Logger;
  private readonly docker: Docker;
  private readonly httpEndpoint: HttpEndpoint;
  private readonly live: LiveWorld;
  private readonly events: DockerEventStream;
  private readonly debouncer: Debouncer;
  private queue: Promise<unknown> = Promise.resolve();
  private pending: Pending = { containers: new Set(), removed: new Set(), networks: new Set(), eventTimes: [] };
  private filePolicy: PolicySet = emptyPolicySet();
  /** Compiles only what changed between events (falls back to full compiles; see compile/session.ts). */
  private session!: CompileSession;
  private readonly labelCompiler = new LabelCompiler();
  /** Identity of the policy files' content for the session's key (objects are replaced on reload). */
  private filePolicyIds = new WeakMap<PolicySet, number>();
  private policyHash = '';
  private policyErrors: Diagnostic[] = [];
  private policyLoadedAt: string | undefined;
  private labelErrors: Diagnostic[] = [];
  private applied: RulesetPlan | undefined;
  private appliedAt: string | undefined;
  private lastWorld: World | undefined;
  private lastPolicySet: PolicySet | undefined;
  private enforcedSince = new Map<string, string>();
  private violations: Violation[] = [];
  private violationKeys = new Set<string>();
  private lastDrift: (DriftReport & { at: string; skipped?: string }) | undefined;
  private driftRepairs = 0;
  /**
   * Drift checks are gated by the nf_tables generation (bumped by every commit, by anyone): when it
   * is the one at which the kernel last matched the applied ruleset, nothing can have changed.
   */
  private cleanGeneration: number | undefined;
  /** Digests of the rules as read back after moat's last rule change (edits in place show as drift). */
  private ruleDigest: Record<string, string> | undefined;
  /**
   * Chains added by a change batch since the digests were read: the next drift check reads the kernel
   * (whatever the generation) and takes their digests then. Reading back right after the change
   * would hold up the events behind it (`nft -j list table` of 10,000 endpoints: ~1.1 s).
   */
  private digestPending = false;
  /** Whether the iptables DOCKER-USER jump lives in nf_tables (iptables-nft), so under the generation too. */
  private jumpUnderGeneration = false;
  /** iptables backend: the chains as read back right after moat's last apply (the drift reference). */
  private iptablesReference: RulesetSummary | undefined;
  /** Something `moat status` shows changed since the status was last written to the database. */
  private statusDirty = true;
  private policyGeneration = 0;
  private violationDebounce!: Debouncer;
  private saveDebounce!: Debouncer;
  /** The applied plan changed since it was last written to the state store. */
  private unsavedApplied = false;
  /** Why the last whole-table replace could not go over netlink (logged when it changes). */
  private lastFallback: string | undefined;
  /** A whole-table replace not yet recorded in the state directory (for `moat rollback`). */
  private unrecordedFull: { plan: RulesetPlan; at: string } | undefined;
  private driftDeferred = 0;
  private violationInput: { world: World; policySet: PolicySet; plan: RulesetPlan } | undefined;
  private statusSavedAt = 0;
  private lastError: { at: string; message: string } | undefined;
  private lastApplyOk = false;
  private synced = false;
  private dockerConnected = false;
  private lastEventAt: string | undefined;
  private reconnects = 0;
  private timers: NodeJS.Timeout[] = [];
  private watchers: FSWatcher[] = [];
  private policyDebounce: Debouncer;
  /** The last parse of each policy file, by its content's digest. */
  private readonly parsedPolicyFiles = new Map<string, { sha256: string; result: ReturnType<typeof loadPolicyFile> }>();
  private stopped = false;
  private readonly startedAt = new Date().toISOString();
  private lastLoop = Date.now();
  private dropCache: { at: number; value: DropCounter[] } | undefined;

  constructor(readonly options: ControllerOptions) {
    this.log = options.logger;
    const conn = parseDockerHost(options.dockerHost);
    this.docker = conn.docker;
    const modem = (this.docker as unknown as { modem: { socketPath?: string; host?: string; port?: number } }).modem;
    this.httpEndpoint = modem.socketPath ? { socketPath: modem.socketPath } : { host: modem.host, port: Number(modem.port) };
    this.store = new StateStore(options.stateDir);
    this.metrics = new ControllerMetrics(() => this.readDrops(), options.defaultMetrics !== false);
    this.live = new LiveWorld(this.docker, { dockerHost: options.dockerHost, project: options.project });
    this.session = new CompileSession(options.enforce);
    this.violationDebounce = new Debouncer(
      () =>
        void this.enqueue('violations', async () => {
          // Events waiting go first: analyse after them (the newest world wins anyway).
          if (this.eventsWaiting()) return this.violationDebounce.trigger();
          const v = this.violationInput;
          this.violationInput = undefined;
          if (v) this.updateViolations(v.world, v.policySet, v.plan);
          this.collectIfIdle();
        }),
      200,
      1000,
    );
    // The applied plan in the state store is for a restart: at 10,000 endpoints it is ~5 MB of JSON
    // and ~30 ms to write, which per event would hold up the next batch and load the old generation.
    // A restart compares the kernel with it first, so a plan a few hundred ms old only costs a
    // whole-table replace then.
    this.saveDebounce = new Debouncer(
      () =>
        void this.enqueue('save', async () => {
          if (this.eventsWaiting()) return this.saveDebounce.trigger();
          this.saveApplied();
        }),
      200,
      1000,
    );
    this.debouncer = new Debouncer(
      () =>
        this.enqueue('events', async () => {
          await this.processPending();
          this.collectIfIdle();
        }),
      options.debounceMs ?? 10,
      options.maxDebounceMs ?? 100,
    );
    this.policyDebounce = new Debouncer(() => void this.reloadPolicy('file change'), 200, 1000);
    this.events = new DockerEventStream(this.httpEndpoint, {
      event: (e) => this.onEvent(e),
      connected: (resumed) => {
        this.dockerConnected = true;
        this.statusDirty = true;
        this.metrics.dockerConnected.set(1);
        this.log.info({ resumed }, 'docker event stream connected');
        if (resumed) {
          this.reconnects++;
          this.metrics.dockerReconnects.inc();
          // Whatever happened while away (a dockerd restart re-creates containers): re-read it all.
          void this.resync('docker reconnected');
        }
      },
      disconnected: (err) => {
        if (this.dockerConnected) this.log.warn({ err: err?.message }, 'docker event stream lost; reconnecting with backoff');
        this.dockerConnected = false;
        this.statusDirty = true;
        this.metrics.dockerConnected.set(0);
      },
      badLine: (line, err) => this.log.warn({ line, err: err.message }, 'unparsable line in the docker event stream'),
    });
  }

  private get backendKind(): 'nft' | 'iptables' {
    return this.options.enforce.backend ?? 'nft';
  }
  private get target(): string {
    return this.backendKind === 'nft' ? (this.options.enforce.table ?? 'moat') : (this.options.enforce.chainPrefix ?? 'MOAT');
  }

  /** Runs work one item at a time; errors are logged and recorded, never thrown out of the queue. */
  private enqueue<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    const p = this.queue.then(async () => {
      if (this.stopped) return undefined;
      try {
        return await fn();
      } catch (e) {
        this.noteError(what, e);
        return undefined;
      }
    });
    this.queue = p.catch(() => undefined);
    return p;
  }

  private noteError(what: string, e: unknown): void {
    const message = e instanceof UserError ? e.diagnostics.map(formatDiagnostic).join('; ') : (e as Error)?.message ?? String(e);
    this.lastError = { at: new Date().toISOString(), message: `${what}: ${message}` };
    this.statusDirty = true;
    this.log.error({ what, err: message }, `${what} failed`);
    try {
      this.store.recordEvent('error', `${what}: ${message}`.slice(0, 2000));
    } catch {
      /* the store is best effort here */
    }
  }

  // ------------------------------------------------------------------ start / stop

  async start(): Promise<void> {
    const last = this.store.lastApplied();
    if (last && last.backend === this.backendKind && last.target === this.target) {
      this.applied = currentPlanShape(last.plan);
      this.appliedAt = last.at;
    }
    this.loadPolicyInitial();
    const v = await run('iptables', ['--version'], { timeoutMs: 5000 }).catch(() => undefined);
    this.jumpUnderGeneration = !!v && v.code === 0 && /nf_tables/.test(v.stdout);
    // Subscribe first so nothing that happens during the initial load is missed.
    this.events.start();
    await this.enqueue('initial sync', () => this.doResync('start'));
    if (!this.synced) {
      // Docker unreachable or the apply failed: keep trying on the resync timer; the kernel keeps its rules.
      this.log.warn('initial sync did not complete; the kernel keeps its previous rules and unknown addresses stay dropped');
    }
    const resyncMs = this.options.resyncIntervalMs ?? 60_000;
    if (resyncMs > 0) this.timers.push(setInterval(() => void this.resync('periodic'), resyncMs));
    const driftMs = this.options.driftIntervalMs ?? 10_000;
    if (driftMs > 0) this.timers.push(setInterval(() => void this.checkDrift('periodic'), driftMs));
    // Liveness: the event loop turns.
    this.timers.push(setInterval(() => (this.lastLoop = Date.now()), 1000));
    // For `moat status` when the daemon does not answer: a copy of the status in the database.
    // Written when something changed (at most every 5 s), and once a minute regardless (savedAt).
    this.timers.push(
      setInterval(() => {
        if (this.statusDirty || Date.now() - this.statusSavedAt >= 60_000) this.persistStatus();
      }, 5000),
    );
    this.persistStatus();
    if (this.options.watchPolicies !== false) this.watchPolicyFiles();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.events.stop();
    this.debouncer.cancel();
    this.policyDebounce.cancel();
    this.violationDebounce.cancel();
    this.saveDebounce.cancel();
    for (const t of this.timers) clearInterval(t);
    for (const w of this.watchers) w.close();
    this.timers = [];
    this.watchers = [];
    await this.queue.catch(() => undefined);
    this.saveApplied();
    this.persistStatus();
    this.store.close();
  }

  /** Resolves once every queued item so far is done (tests). */
  idle(): Promise<void> {
    return this.queue.then(() => undefined, () => undefined);
  }

  // ------------------------------------------------------------------ policy

  private readPolicyFiles(): { set: PolicySet; diagnostics: Diagnostic[]; files: { file: string; sha256: string }[]; hash: string } {
    const diagnostics: Diagnostic[] = [];
    const sets: PolicySet[] = [];
    const files: { file: string; sha256: string }[] = [];
    let list: string[] = [];
    try {
      list = policyFiles(this.options.policyPaths);
    } catch (e) {
      if (e instanceof UserError) diagnostics.push(...e.diagnostics);
      else throw e;
    }
    for (const f of list) {
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch (e) {
        diagnostics.push({ severity: 'error', code: 'policy.unreadable', message: `cannot read ${f}: ${(e as Error).message}`, fix: 'check the path and permissions' });
        continue;
      }
      const sha256 = createHash('sha256').update(text).digest('hex');
      files.push({ file: f, sha256 });
      // A file unchanged since it was last read is not parsed again (a reload after an edit of one
      // file of many, or the watcher's reload after SIGHUP's): its policies stay the same objects,
      // which the compile session's policy delta then sees as unchanged without comparing them.
      const hit = this.parsedPolicyFiles.get(f);
      const r = hit && hit.sha256 === sha256 ? hit.result : loadPolicyFile(f, text);
      this.parsedPolicyFiles.set(f, { sha256, result: r });
      sets.push(r.policySet);
      diagnostics.push(...r.diagnostics);
    }
    for (const f of this.parsedPolicyFiles.keys()) if (!list.includes(f)) this.parsedPolicyFiles.delete(f);
    const hash = createHash('sha256').update(JSON.stringify(files)).digest('hex');
    return { set: mergePolicySets(sets), diagnostics, files, hash };
  }

  private loadPolicyInitial(): void {
    const r = this.readPolicyFiles();
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length === 0) {
      this.acceptPolicy(r);
      return;
    }
    const good = this.store.lastGoodPolicy();
    this.policyErrors = errors;
    this.statusDirty = true;
    this.metrics.policyValid.set(0);
    this.metrics.policyReloads.inc({ result: 'invalid' });
    if (!good) {
      throw new UserError(errors.map((d) => ({ ...d, fix: d.fix ?? 'fix the policy file; moat has no earlier good policy to fall back on' })));
    }
    this.filePolicy = good.policySet;
    this.policyLoadedAt = good.at;
    this.log.error({ errors: errors.map(formatDiagnostic) }, `policy files are invalid; enforcing the last good policy from ${good.at}`);
    this.store.recordEvent('policy-invalid', errors.map(formatDiagnostic).join('\n').slice(0, 4000));
  }

  private acceptPolicy(r: { set: PolicySet; diagnostics: Diagnostic[]; files: { file: string; sha256: string }[]; hash: string }): void {
    this.filePolicy = r.set;
    this.policyHash = r.hash;
    this.policyErrors = [];
    this.statusDirty = true;
    this.policyLoadedAt = new Date().toISOString();
    this.metrics.policyValid.set(1);
    for (const w of r.diagnostics) this.log.warn({ warning: formatDiagnostic(w) }, 'policy warning');
    this.store.saveGoodPolicy({ at: this.policyLoadedAt, files: r.files, policySet: r.set });
  }

  /** Re-reads the policy files; an invalid policy keeps the previous one in force. */
  reloadPolicy(reason: string): Promise<void> {
    return this.enqueue('policy reload', async () => {
      const r = this.readPolicyFiles();
      const errors = r.diagnostics.filter((d) => d.severity === 'error');
      if (errors.length) {
        this.policyErrors = errors;
        this.statusDirty = true;
        this.metrics.policyValid.set(0);
        this.metrics.policyReloads.inc({ result: 'invalid' });
        const text = errors.map(formatDiagnostic);
        this.log.error({ reason, errors: text }, 'policy reload rejected: the previous policy stays in force');
        this.store.recordEvent('policy-invalid', text.join('\n').slice(0, 4000));
        return;
      }
      if (r.hash === this.policyHash && this.policyErrors.length === 0) {
        this.log.debug({ reason }, 'policy unchanged');
        return;
      }
      this.acceptPolicy(r);
      this.metrics.policyReloads.inc({ result: 'ok' });
      this.log.info({ reason, files: r.files.map((f) => f.file), policies: r.set.policies.map((p) => p.id) }, 'policy reloaded');
      this.store.recordEvent('policy-reloaded', `${reason}: ${r.files.map((f) => f.file).join(', ')}`);
      await this.reconcile(`policy reload (${reason})`, {});
    }).then(() => undefined);
  }

  private watchPolicyFiles(): void {
    const dirs = new Set<string>();
    for (const p of this.options.policyPaths) {
      const abs = resolvePath(p);
      try {
        dirs.add(statSync(abs).isDirectory() ? abs : dirname(abs));
      } catch {
        dirs.add(dirname(abs));
      }
    }
    for (const d of dirs) {
      try {
        // The directory, not the file: editors replace files by rename, which a file watch would lose.
        const w = watch(d, { persistent: false }, () => this.policyDebounce.trigger());
        w.on('error', (e) => this.log.warn({ dir: d, err: e.message }, 'policy watch failed; SIGHUP still reloads'));
        this.watchers.push(w);
      } catch (e) {
        this.log.warn({ dir: d, err: (e as Error).message }, 'cannot watch policy directory; SIGHUP still reloads');
      }
    }
  }

  // ------------------------------------------------------------------ events

  private onEvent(e: DockerEvent): void {
    this.metrics.dockerEvents.inc({ type: e.Type, action: e.Action });
    this.lastEventAt = new Date().toISOString();
    if (!isWatched(e)) return;
    const p = this.pending;
    if (e.Type === 'container') {
      if (e.Action === 'destroy') p.removed.add(e.Actor.ID);
      else p.containers.add(e.Actor.ID);
    } else if (e.Type === 'network') {
      const net = e.Actor.Attributes?.name ?? e.Actor.ID;
      if (e.Action === 'connect' || e.Action === 'disconnect') {
        const c = e.Actor.Attributes?.container;
        if (c) p.containers.add(c);
        p.networks.add(e.Actor.ID);
      } else p.networks.add(e.Actor.ID || net);
    }
    if (typeof e.timeNano === 'number' && e.timeNano > 0) p.eventTimes.push(e.timeNano);
    this.debouncer.trigger();
  }

  /**
   * How the controller applies: without the separate check (a whole-table replace is one atomic
   * transaction, which the kernel refuses whole or takes whole, so a check would only repeat its
   * validation) and without the state directory's record on the event path (saveApplied writes it).
   */
  private controllerApply(): EnforceOptions {
    return { ...this.options.enforce, check: false, record: false };
  }

  /** Writes the applied plan to the state store if it changed since the last write, and the last whole-table replace to the state directory. */
  private saveApplied(): void {
    const full = this.unrecordedFull;
    this.unrecordedFull = undefined;
    if (full) {
      try {
        saveAppliedRecord(this.options.enforce.stateDir ?? DEFAULT_STATE_DIR, { backend: this.backendKind, target: this.target, appliedAt: full.at, plan: full.plan, script: '' });
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'cannot write the applied ruleset to the state directory (moat rollback will not see it)');
      }
    }
    if (!this.unsavedApplied || !this.applied || !this.appliedAt) return;
    this.unsavedApplied = false;
    this.store.saveApplied({ at: this.appliedAt, backend: this.backendKind, target: this.target, plan: this.applied });
  }

  /**
   * After work whose garbage the next event should not pay for: collect it now, unless events wait
   * (gc.ts). First, what the next container event's delta compile needs from the last full compile
   * (its plan index), so neither a policy change nor the next event waits for it.
   */
  private collectIfIdle(): void {
    if (this.eventsWaiting()) return;
    this.session.prepare();
    const ms = collectYoung();
    if (ms !== undefined) this.metrics.idleGc.inc(ms / 1000);
  }

  /** Docker events received and not yet applied. */
  private eventsWaiting(): boolean {
    const p = this.pending;
    return p.containers.size + p.removed.size + p.networks.size > 0;
  }

  private async processPending(): Promise<void> {
    const p = this.pending;
    this.pending = { containers: new Set(), removed: new Set(), networks: new Set(), eventTimes: [] };
    if (!p.containers.size && !p.removed.size && !p.networks.size) return;
    this.live.invalidateLoadKey();
    for (const n of p.networks) await this.live.refreshNetwork(n);
    for (const id of p.removed) {
      this.live.removeContainer(id);
      p.containers.delete(id);
    }
    for (const id of p.containers) await this.live.refreshContainer(id);
    await this.reconcile('events', { eventTimes: p.eventTimes, containers: [...p.containers, ...p.removed] });
  }

  // ------------------------------------------------------------------ reconcile

  private desiredPlan(world: World): { plan: RulesetPlan; policySet: PolicySet; compile: { mode: string; reason?: string } } {
    const sets = [this.filePolicy];
    let labelVersion = '';
    if (this.options.labels !== false) {
      const labels = this.labelCompiler.compile(world);
      labelVersion = String(labels.version);
      const errors = labels.diagnostics.filter((d) => d.severity === 'error');
      const before = new Set(this.labelErrors.map(formatDiagnostic));
      // Logged once per new error, not on every reconcile.
      for (const d of errors) if (!before.has(formatDiagnostic(d))) this.log.warn({ error: formatDiagnostic(d), container: d.context }, 'invalid security label (that container fails closed)');
      this.labelErrors = errors;
      sets.push(labels.policySet);
    }
    const policySet = mergePolicySets(sets);
    let fileId = this.filePolicyIds.get(this.filePolicy);
    if (fileId === undefined) this.filePolicyIds.set(this.filePolicy, (fileId = ++this.policyGeneration));
    // The label compiler's version changes exactly when the labels' policy set does.
    const key = `${fileId}|${labelVersion}`;
    const compiled = this.session.compile(world, policySet, key);
    this.metrics.compiles.inc({ mode: compiled.mode });
    let plan = compiled.plan;
    if (this.options.failClosedPools?.length) {
      const unmanaged = world.networks.filter((n) => !plan.managedNetworks.includes(n.name)).flatMap((n) => n.subnets);
      plan = withFailClosedPools(plan, this.options.failClosedPools, unmanaged);
    }
    return { plan, policySet, compile: { mode: compiled.mode, reason: compiled.reason } };
  }

  /**
   * Recomputes the plan from the current world and policy and takes the kernel there in one
   * transaction (element changes when possible, else a whole-table replace). `full` forces a
   * whole replace (after drift or at start when the kernel does not hold what we think).
   */
  private async reconcile(trigger: string, o: { eventTimes?: number[]; containers?: string[]; full?: boolean }): Promise<void> {
    const t0 = process.hrtime.bigint();
    const world = this.live.world();
    let desired: ReturnType<Controller['desiredPlan']>;
    try {
      desired = this.desiredPlan(world);
    } catch (e) {
      this.metrics.applyErrors.inc();
      this.lastApplyOk = false;
      this.store.recordApply({ at: new Date().toISOString(), reason: trigger, mode: 'compile-failed', ok: false, durationMs: 0, error: (e as Error).message.slice(0, 2000), endpoints: world.endpoints.length });
      throw e;
    }
    const { plan } = desired;
    const compiledAt = process.hrtime.bigint();
    let mode = 'full';
    let via: 'netlink' | 'nft' | undefined;
    let detail: string | undefined;
    let changes: IncrementalChanges | undefined;
    try {
      const before = this.cleanGeneration;
      this.cleanGeneration = undefined;
      if (o.full || !this.applied || this.backendKind !== 'nft') {
        const r = await applyPlan(plan, this.controllerApply());
        if (r.fallback && r.fallback !== this.lastFallback) this.log.warn({ reason: r.fallback }, 'whole-table replace went through nft -f instead of one netlink batch (slower)');
        this.lastFallback = r.fallback;
      } else {
        const r = await applyIncremental(this.applied, plan, this.controllerApply());
        mode = r.mode;
        via = r.via;
        changes = r.changes;
        detail = r.reason ?? (r.changes ? JSON.stringify(r.changes) : undefined);
      }
      if (mode === 'unchanged') this.cleanGeneration = before;
      else if (via === 'netlink' && before !== undefined) {
        // One element transaction of ours on a clean kernel: clean at the next generation, if no one
        // else committed meanwhile (then the next drift check reads the kernel).
        const g = await this.generation();
        if (g === before + 1) this.cleanGeneration = g;
      }
    } catch (e) {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      this.metrics.applyErrors.inc();
      this.lastApplyOk = false;
      this.store.recordApply({ at: new Date().toISOString(), reason: trigger, mode: 'failed', ok: false, durationMs: ms, error: (e as Error).message.slice(0, 2000), endpoints: world.endpoints.length });
      throw e;
    }
    const done = process.hrtime.bigint();
    const ms = Number(done - t0) / 1e6;
    this.applied = plan;
    this.appliedAt = new Date().toISOString();
    this.lastApplyOk = true;
    this.lastWorld = world;
    this.lastPolicySet = desired.policySet;
    this.metrics.reconcileDuration.observe({ trigger: trigger.split(' ')[0], mode }, ms / 1000);
    this.metrics.applies.inc({ mode });
    const nowNs = Number(BigInt(Date.now()) * 1_000_000n);
    for (const t of o.eventTimes ?? []) this.metrics.eventToEnforced.observe(Math.max(0, (nowNs - t) / 1e9));
    this.updateRulesetGauges(plan, world);
    if (mode !== 'unchanged') this.statusDirty = true;
    if (mode === 'full' || (mode === 'incremental' && via !== 'netlink')) await this.captureReference(plan);
    else if (mode === 'incremental' && changes && changes.chainsAdded.length + changes.chainsRemoved.length > 0) {
      // A change batch with new or removed chains: the unchanged chains keep their digests, the new
      // ones get theirs at the next drift check (digestPending), off the event path.
      if (this.ruleDigest) for (const c of changes.chainsRemoved) delete this.ruleDigest[c];
      this.digestPending = true;
    }
    if (mode !== 'unchanged') {
      // Written once events go quiet, not per event (saveDebounce); a whole-table replace also
      // leaves a record in the state directory for `moat rollback`, as `moat apply` does.
      this.unsavedApplied = true;
      if (mode === 'full') this.unrecordedFull = { plan, at: this.appliedAt };
      this.saveDebounce.trigger();
      this.store.recordApply({ at: this.appliedAt, reason: trigger, mode, ok: true, durationMs: ms, endpoints: world.endpoints.length, detail: detail?.slice(0, 2000) });
    }
    const names = (o.containers ?? []).map((id) => world.endpoints.find((e) => e.id === id)).filter((e) => !!e).map((e) => endpointDisplayName(e!));
    const part = (a: bigint, b: bigint) => Math.round(Number(b - a) / 1e5) / 10;
    this.log[mode === 'unchanged' ? 'debug' : 'info']({ trigger, mode, compile: desired.compile.mode, compileReason: desired.compile.reason, ms: Math.round(ms * 10) / 10, compileMs: part(t0, compiledAt), applyMs: part(compiledAt, done), endpoints: world.endpoints.length, containers: names.length ? names : undefined }, 'ruleset applied');
    for (const w of plan.warnings) this.log.warn({ warning: w }, 'enforcement warning');
    // Off the event path: a burst of events is not held up by the analysis behind the violations.
    this.violationInput = { world, policySet: desired.policySet, plan };
    this.violationDebounce.trigger();
  }

  private updateRulesetGauges(plan: RulesetPlan, world: World): void {
    this.metrics.rules.set(plan.chains.reduce((n, c) => n + c.rules.length, 0));
    this.metrics.chains.set(plan.chains.length);
    this.metrics.setElements.set(plan.sets.reduce((n, s) => n + s.elements.length, 0) + plan.maps.reduce((n, m) => n + m.elements.length, 0));
    this.metrics.endpoints.set(world.endpoints.length);
    // Every known address is in the ingress maps (plan-model.ts MapElement).
    const known = new Set(plan.maps.filter((m) => isIngressMap(m.name)).flatMap((m) => m.elements.map((e) => e.key)));
    const now = new Date().toISOString();
    const seen = new Set<string>();
    for (const e of world.endpoints) {
      seen.add(e.id);
      const enforced = e.attachments.some((a) => (a.ipv4 && known.has(a.ipv4)) || (a.ipv6 && known.has(a.ipv6)));
      if (enforced && !this.enforcedSince.has(e.id)) this.enforcedSince.set(e.id, now);
      if (!enforced) this.enforcedSince.delete(e.id);
    }
    for (const id of [...this.enforcedSince.keys()]) if (!seen.has(id)) this.enforcedSince.delete(id);
  }

  private updateViolations(world: World, policySet: PolicySet, plan: RulesetPlan): void {
    let list: Violation[];
    try {
      list = findViolations(world, policySet, plan.managedNetworks);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'violation detection failed');
      return;
    }
    const keys = new Set(list.map((v) => `${v.kind}|${v.containerId}|${v.message}`));
    for (const v of list) {
      const k = `${v.kind}|${v.containerId}|${v.message}`;
      if (this.violationKeys.has(k)) continue;
      this.log.warn({ violation: v.kind, container: v.endpoint, fix: v.fix }, v.message);
      this.store.recordEvent(`violation:${v.kind}`, v.message);
    }
    this.violationKeys = keys;
    this.violations = list;
    this.metrics.violations.reset();
    const byKind = new Map<string, number>();
    for (const v of list) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
    for (const [k, n] of byKind) this.metrics.violations.set({ kind: k }, n);
  }

  // ------------------------------------------------------------------ resync and drift

  /** Re-reads Docker in full, compares the kernel with what was applied, and applies. */
  resync(reason: string): Promise<void> {
    return this.enqueue(`resync (${reason})`, () => this.doResync(reason)).then(() => undefined);
  }

  private async doResync(reason: string): Promise<void> {
    // Periodic, with Docker listing what the last full read saw and no event since: nothing to re-read
    // or recompile; only the kernel side is checked (and repaired).
    const unchanged = reason === 'periodic' && !!this.applied && this.synced && this.dockerConnected && this.pending.eventTimes.length === 0 && (await this.live.unchangedSinceLoad().catch(() => false));
    if (!unchanged) await this.live.loadAll();
    let full = !this.applied;
    let drifted = false;
    if (this.applied) {
      const d = await this.drift();
      if (d.drifted) {
        this.repairNote(d, reason);
        full = true;
        drifted = true;
      }
    }
    if (unchanged && !drifted) return;
    // Events queued meanwhile are covered by the fresh read.
    let times: number[] = [];
    if (!unchanged) {
      times = this.pending.eventTimes;
      this.pending = { containers: new Set(), removed: new Set(), networks: new Set(), eventTimes: [] };
    }
    await this.reconcile(`resync ${reason}`, { full, eventTimes: times });
    if (drifted) {
      this.repaired();
      await this.drift();
    }
    this.synced = true;
  }

  /** The nf_tables generation, when it can be read here (nft backend, this process's netns). */
  private async generation(): Promise<number | undefined> {
    // iptables: only the nf_tables flavour keeps its rules under the generation.
    if (this.backendKind !== 'nft' && !this.jumpUnderGeneration) return undefined;
    if (this.options.enforce.netns !== undefined || this.options.enforce.netlink === false) return undefined;
    try {
      return await sharedNetlink()?.generation();
    } catch {
      return undefined;
    }
  }

  /**
   * Reads the kernel right after moat changed rules: the rules' digests become the reference for
   * edits in place, and the generation the clean one, if the kernel holds the plan.
   */
  private async captureReference(plan: RulesetPlan): Promise<void> {
    const iptables = this.backendKind !== 'nft';
    try {
      const g = await this.generation();
      const actual = await backendFor(this.options.enforce).readBack();
      if (iptables) {
        // iptables: what the kernel holds right after the apply is the reference (one plan rule is
        // several iptables rules, so the plan itself is not comparable line by line).
        this.iptablesReference = actual.present ? actual : undefined;
        this.ruleDigest = actual.present ? actual.ruleDigest : undefined;
        if (!actual.present) return;
      } else {
        if (describeDrift(planSummary(plan), actual).drifted) return;
        this.ruleDigest = actual.ruleDigest;
        this.digestPending = false;
      }
      if (g !== undefined) this.cleanGeneration = g;
    } catch (e) {
      if (iptables) {
        this.iptablesReference = undefined;
        this.ruleDigest = undefined;
      }
      this.log.debug({ err: (e as Error).message }, 'cannot read back the ruleset after apply');
    }
  }

  private async drift(): Promise<DriftReport> {
    const g = await this.generation();
    const b = backendFor(this.options.enforce);
    if (g !== undefined && g === this.cleanGeneration && this.jumpUnderGeneration && !this.digestPending) {
      // No nf_tables commit since the kernel last matched: the rules are as they were, without reading
      // them. The iptables backend's ipsets live outside nf_tables (`ipset add` leaves the generation
      // where it was): their members are still compared.
      const sets = b instanceof IptablesBackend ? await b.ipsetDigests() : undefined;
      const ref = this.ruleDigest ?? {};
      const setsSame = !sets || (Object.keys(sets).length === Object.keys(ref).filter((k) => k.startsWith('ipset ')).length && Object.entries(sets).every(([k, v]) => ref[k] === v));
      if (setsSame) {
        const d: DriftReport = { drifted: false, findings: [] };
        this.lastDrift = { ...d, at: new Date().toISOString(), skipped: `nf_tables generation ${g} unchanged${sets ? '; ipset members unchanged' : ''}` };
        return d;
      }
    }
    if (this.backendKind !== 'nft' && !this.iptablesReference) {
      // Nothing applied by this process yet: the next reconcile replaces the chains anyway.
      const d: DriftReport = { drifted: false, findings: [] };
      this.lastDrift = { ...d, at: new Date().toISOString(), skipped: 'no reference yet (iptables)' };
      return d;
    }
    const d = await detectDrift(b, this.applied!, { netns: this.options.enforce.netns, ruleDigest: this.ruleDigest, expected: this.iptablesReference });
    if (!d.drifted) {
      if (g !== undefined) this.cleanGeneration = g;
      // The reference digests: all of them the first time, the chains added since otherwise.
      if (!this.ruleDigest) this.ruleDigest = d.actual.ruleDigest;
      else if (this.digestPending) this.ruleDigest = { ...d.actual.ruleDigest, ...this.ruleDigest };
      this.digestPending = false;
    }
    this.lastDrift = { drifted: d.drifted, findings: d.findings, dockerUserJump: d.dockerUserJump, at: new Date().toISOString() };
    if (d.dockerUserJump === false && this.backendKind === 'iptables') {
      await restoreDockerUserJump(this.options.enforce.netns);
      this.metrics.driftRepairs.inc({ kind: 'docker-user-jump' });
    }
    return { drifted: d.drifted, findings: d.findings, diff: d.diff, dockerUserJump: d.dockerUserJump };
  }

  private repaired(): void {
    this.driftRepairs++;
    this.statusDirty = true;
    this.metrics.driftRepairs.inc({ kind: 'ruleset' });
    this.log.info({ repairs: this.driftRepairs }, 'drift repaired: the kernel holds the applied ruleset again');
  }

  private repairNote(d: DriftReport, reason: string): void {
    const msg = `kernel differs from the applied ruleset (${reason}): ${d.findings.slice(0, 10).join('; ')}`;
    this.log.warn({ findings: d.findings }, 'drift detected; restoring');
    this.store.recordEvent('drift', msg.slice(0, 4000));
  }

  /** Compares the kernel with the applied ruleset and restores it when someone changed it. */
  checkDrift(reason: string): Promise<DriftReport | undefined> {
    return this.enqueue('drift check', async () => {
      if (!this.applied) return undefined;
      // Events waiting go first (a drift check may read and parse the whole table); a periodic check
      // gives way at most 3 times in a row, so that constant churn cannot starve it.
      if (reason === 'periodic' && this.eventsWaiting() && this.driftDeferred < 3) {
        this.driftDeferred++;
        return undefined;
      }
      this.driftDeferred = 0;
      const d = await this.drift();
      if (d.drifted) {
        this.repairNote(d, reason);
        const t0 = Date.now();
        this.cleanGeneration = undefined;
        await applyPlan(this.applied, this.controllerApply());
        await this.captureReference(this.applied);
        this.repaired();
        this.store.recordApply({ at: new Date().toISOString(), reason: `drift repair (${reason})`, mode: 'full', ok: true, durationMs: Date.now() - t0, endpoints: this.lastWorld?.endpoints.length ?? 0 });
        this.lastDrift = { ...(await this.drift()), diff: undefined, at: new Date().toISOString() };
      }
      return d;
    });
  }

  // ------------------------------------------------------------------ observability

  private async readDrops(): Promise<DropCounter[]> {
    if (this.backendKind !== 'nft') return [];
    if (this.dropCache && Date.now() - this.dropCache.at < 5000) return this.dropCache.value;
    const items = await new NftBackend({ table: this.options.enforce.table, netns: this.options.enforce.netns }).listJson();
    const value = items ? dropCounters(items) : [];
    this.dropCache = { at: Date.now(), value };
    return value;
  }

  healthz(): { ok: boolean; detail: Record<string, unknown> } {
    const loopOk = Date.now() - this.lastLoop < 10_000;
    return {
      ok: loopOk,
      detail: {
        eventLoop: loopOk ? 'ok' : 'stalled',
        docker: this.dockerConnected ? 'connected' : 'disconnected',
        policy: this.policyErrors.length ? { valid: false, errors: this.policyErrors.map(formatDiagnostic) } : { valid: true },
        lastApply: this.lastApplyOk ? 'ok' : 'failed',
        lastError: this.lastError,
      },
    };
  }

  readyz(): { ok: boolean; detail: Record<string, unknown> } {
    const ok = this.synced && this.dockerConnected && this.lastApplyOk && !this.stopped;
    return { ok, detail: { synced: this.synced, docker: this.dockerConnected, lastApplyOk: this.lastApplyOk } };
  }

  endpointStatus(): EndpointStatus[] {
    const world = this.lastWorld;
    if (!world || !this.applied) return [];
    const chainOf = new Map<string, { ingress?: string; egress?: string }>();
    for (const m of this.applied.maps) {
      for (const el of m.elements) {
        const c = chainOf.get(el.key) ?? {};
        if (isIngressMap(m.name)) c.ingress = el.chain || undefined;
        else c.egress = el.chain || undefined;
        chainOf.set(el.key, c);
      }
    }
    return world.endpoints.map((e) => {
      const addresses = e.attachments.flatMap((a) => [a.ipv4, a.ipv6].filter((x): x is string => !!x));
      const c = addresses.map((a) => chainOf.get(a)).find((x) => !!x);
      return { id: e.id, name: endpointDisplayName(e), addresses, enforced: this.enforcedSince.has(e.id), since: this.enforcedSince.get(e.id), ingressChain: c?.ingress, egressChain: c?.egress };
    });
  }

  status(): Record<string, unknown> {
    const plan = this.applied;
    const s = {
      version: VERSION,
      pid: process.pid,
      startedAt: this.startedAt,
      ready: this.readyz().ok,
      backend: this.backendKind,
      target: this.target,
      project: this.options.project,
      docker: { connected: this.dockerConnected, lastEventAt: this.lastEventAt, reconnects: this.reconnects },
      policy: {
        valid: this.policyErrors.length === 0,
        files: this.options.policyPaths,
        enforcedSince: this.policyLoadedAt,
        errors: this.policyErrors.map(formatDiagnostic),
        labelErrors: this.labelErrors.map(formatDiagnostic),
      },
      ruleset: plan
        ? {
            appliedAt: this.appliedAt,
            chains: plan.chains.length,
            rules: plan.chains.reduce((n, c) => n + c.rules.length, 0),
            setElements: plan.sets.reduce((n, x) => n + x.elements.length, 0) + plan.maps.reduce((n, m) => n + m.elements.length, 0),
            managedNetworks: plan.managedNetworks,
            warnings: plan.warnings,
          }
        : undefined,
      endpoints: this.endpointStatus(),
      drift: { lastCheck: this.lastDrift, repairs: this.driftRepairs },
      violations: this.violations,
      lastError: this.lastError,
      applies: this.store.applies(10),
    };
    return s;
  }

  /** Writes the status into the state database (read by `moat status` when the daemon is not answering). */
  persistStatus(): void {
    this.statusDirty = false;
    this.statusSavedAt = Date.now();
    try {
      const s = this.status();
      this.store.saveStatus({ ...s, savedAt: new Date().toISOString(), applies: undefined });
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot save status');
    }
  }
}
