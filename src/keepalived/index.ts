// keepalived integration: its notifications in (FIFO or notify script),
// the ordered failover steps out, and the track_file that keeps a node
// without state from winning the VRRP election.
export {
  type CheckerNotifyEvent,
  type FailoverTarget,
  type NotifyEvent,
  parseNotifyArgs,
  parseNotifyLine,
  type VrrpNotifyEvent,
  type VrrpState,
} from './notify.js';
export {
  FAILOVER_SEQUENCES,
  type FailoverSequencerCounters,
  type FailoverSequencerOptions,
  FailoverSequencer,
  type FailoverStep,
} from './sequencer.js';
export {
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_RECHECK_MS,
  isNotifyFifoError,
  LineSplitter,
  type NotifyFifoCounters,
  NotifyFifoError,
  type NotifyFifoHandle,
  NotifyFifoReader,
  type NotifyFifoReaderOptions,
  runNotifyFifo,
} from './fifo.js';
export { TrackFile, type TrackFileCounters } from './track-file.js';
export {
  FAILOVER_STEP_TIMEOUT_MS,
  Failover,
  type FailoverOperations,
  type FailoverOptions,
  type FailoverResult,
  withTimeout,
} from './failover.js';
