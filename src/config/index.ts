// Public surface of the config module; everything else imports from here.
export { type HostPort, parseHostPort } from '../common/address.js';
export { DEFAULTS, LIMITS } from './defaults.js';
export { ConfigError, type ConfigIssue, formatIssue, isConfigError } from './errors.js';
export { ConntrackdConfGivenError, detectConntrackdConf } from './conntrackd-detect.js';
export { formatPath, loadConfig, parseConfig } from './load.js';
export {
  type Config,
  type ClusterConfig,
  type ConfigInput,
  FLOWLOG_EVENTS,
  SYSLOG_FACILITIES,
  type SyslogFacility,
  type FlowlogConfig,
  type FlowlogEvent,
  configJsonSchema,
  configSchema,
  type FilterConfig,
  LOG_LEVELS,
  PROTOCOLS,
  type ProtocolName,
  STRIPPABLE_ATTRIBUTES,
  type StrippableAttribute,
  type SyncConfig,
} from './schema.js';
