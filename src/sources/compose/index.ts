// Static Compose resolution (see docs/compose.md) and its mapping to moat's World.
export type { ComposeOptions, ComposeProject, ResolvedNetwork, ResolvedService, ResolvedVolume, ServiceNetwork } from './types.js';
export type { ExposedPort, PortProtocol, ResolvedPort } from './ports.js';
export { loadComposeProject, normalizeProjectName, DEFAULT_FILES } from './loader.js';
export { composeToWorld } from './to-world.js';
export { interpolateString } from './interpolate.js';
export { parseShortPort, parseLongPort, parseExpose } from './ports.js';
export { parseDotEnv } from './dotenv.js';
