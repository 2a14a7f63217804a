// Flow and NAT logging (issue 16): the record, the queue, the outputs (file, IPFIX, syslog) and `flows find`.
export { FileSink, type FileSinkCounters, FlowLogOpenError } from './file-sink.js';
export { FlowLog, type FlowLogCounters, type FlowOutput, type FlowSink } from './flow-log.js';
export { EventQueue } from './queue.js';
export { findNat, type FindResult, type FlowMatch, flowsCommand, parseNatTarget, parseTime } from './find.js';
export { type FlowRecord, flowLine, lineTime, natOf } from './record.js';
export { type DatagramSender, type IpfixCounters, IpfixExporter } from './ipfix-exporter.js';
export { encodeMessages, type IpfixFlow, ipfixFlowOf } from './ipfix.js';
export { nativeUnixDatagramPort, type SyslogCounters, SyslogSink, syslogMessage, type UnixDatagramPort } from './syslog-sink.js';
export { UdpSender } from './udp-sender.js';
