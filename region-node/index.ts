// Public surface of region-node/: start a node; its config and errors.
export { start } from './node.ts';
export type { RegionNodeDeps, RegionNodeHandle } from './node.ts';
export { DEFAULT_CONFIG, validateConfig } from './config.ts';
export type { RegionNodeConfig } from './config.ts';
export { AdmqError, ConfigError, InvalidNameError } from './errors.ts';
export { parseTopicName } from './names.ts';
