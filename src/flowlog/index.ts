// Flow and NAT logging (issue 16): the record, the queue, the file and `flows find`.
export { FileSink, type FileSinkCounters, FlowLogOpenError } from './file-sink.js';
export { FlowLog, type FlowLogCounters, type FlowSink } from './flow-log.js';
export { EventQueue } from './queue.js';
export { findNat, type FindResult, type FlowMatch, flowsCommand, parseNatTarget, parseTime } from './find.js';
export { type FlowRecord, flowLine, lineTime, natOf } from './record.js';
