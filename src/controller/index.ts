// The controller (`moat run`): public API.
export { Controller, type ControllerOptions, type EndpointStatus } from './controller.js';
export { ControlServer, parseListen, isLoopbackListen, request, tokenMatches, DEFAULT_LISTEN, type ListenAddress } from './server.js';
export { StateStore, DB_FILE, type ApplyRecord, type EventRecord } from './store.js';
export { DockerEventStream, isWatched, type DockerEvent } from './events.js';
export { NdjsonSplitter } from './ndjson.js';
export { Backoff, Debouncer, parseDuration } from './timing.js';
export { detectDrift, describeDrift, hasDockerUserJump, type DriftReport } from './drift.js';
export { findViolations, type Violation } from './violations.js';
export { subtractCidrs, withFailClosedPools } from './pools.js';
export { LiveWorld } from './live-world.js';
