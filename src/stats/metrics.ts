// Prometheus metrics for ctsyncd on a private prom-client registry.
//
// The modules keep plain counters (numbers in objects) and know nothing of
// Prometheus. Every metric here is a view of one or more fields of the
// daemon's stats snapshot — the object `ctsyncd stats --json` prints — read
// in the metric's collect() callback at scrape time. One snapshot serves a
// whole scrape, so the metrics of one scrape are mutually consistent.
//
// Counters: prom-client's Counter only counts up by itself, but our source
// of truth is the module's absolute count. Each Counter's collect() resets it
// and adds the absolute value (reset() + inc(labels, v)); the exposition
// therefore says `# TYPE … counter` and the value is exactly the module's
// field. A daemon restart starts the fields at 0 again, which Prometheus
// handles as a counter reset.
//
// The one metric with state of its own is the commit duration histogram: an
// observation per commit, made by the daemon's CommitRunner through observeCommit().
//
// Labels are bounded: cache, direction, op/result/reason enums, the
// configured sync channels (`link`) and the cluster's node ids (`peer`).
// Nothing is ever labelled per connection, address or port.
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventFilterRule } from '../kernel/event-filter.js';
import { type StatsSnapshot, SYNC_AUTH_MODES } from './source.js';

export type Labels = Record<string, string>;
export type Sample = readonly [Labels, number];

export interface MetricDef {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labelNames: readonly string[];
  /** The stats fields this metric shows (paths into `ctsyncd stats --json`). */
  source: string;
  /** A number for a metric without labels, else one sample per label set. */
  read(s: StatsSnapshot): number | Sample[];
}

const CACHES = ['internal', 'external'] as const;

/** Every rule the event socket's kernel filter can carry: each is exported, 0 or 1. */
const EVENT_FILTER_RULES: readonly EventFilterRule[] = ['protocol', 'address-ignore', 'address-accept', 'tcp-state'];

/** Wire error codes (src/sync/wire/types.ts) as drop reasons; every one is exported, 0 until it happens. */
export const DROP_REASONS: Readonly<Record<string, string>> = {
  ETRUNC: 'truncated',
  EMAGIC: 'magic',
  EVERSION: 'version',
  ECLUSTER: 'cluster',
  EAUTH: 'auth',
  EDECODE: 'decode',
  ESIZE: 'size',
  EVALUE: 'value',
};

/** An unknown future code still gets a bounded, readable label (EFOO → foo). */
function dropReason(code: string): string {
  return DROP_REASONS[code] ?? code.replace(/^E/, '').toLowerCase();
}

const counter = (
  name: string,
  help: string,
  source: string,
  read: MetricDef['read'],
  labelNames: readonly string[] = [],
): MetricDef => ({ name, help, type: 'counter', labelNames, source, read });

const gauge = (
  name: string,
  help: string,
  source: string,
  read: MetricDef['read'],
  labelNames: readonly string[] = [],
): MetricDef => ({ name, help, type: 'gauge', labelNames, source, read });

const bool = (b: boolean | undefined): number => (b ? 1 : 0);

/** Samples of one label over a fixed set of (label value, number) pairs. */
function by(label: string, values: Record<string, number | undefined>, extra: Labels = {}): Sample[] {
  return Object.entries(values).map(([v, n]) => [{ ...extra, [label]: v }, n ?? 0] as const);
}

/** Samples labelled with cache=internal|external plus `label`. */
function perCache(label: string, pick: (c: (typeof CACHES)[number]) => Record<string, number | undefined>): Sample[] {
  return CACHES.flatMap((cache) => by(label, pick(cache), { cache }));
}

/** Every ctsyncd_ metric except the commit histogram (see CtsyncdMetrics). */
export const METRIC_DEFS: readonly MetricDef[] = [
  gauge('ctsyncd_ready', 'Whether the initial kernel dump and the first peer sync attempt are done (1) or not (0).', 'ready', (s) =>
    bool(s.ready),
  ),

  // --- caches -----------------------------------------------------------
  gauge(
    'ctsyncd_cache_entries',
    'Conntrack entries in the cache: internal = this node’s kernel table, external = replicated from peers.',
    'internal.entries, external.entries',
    (s) => [
      [{ cache: 'internal' }, s.internal.entries],
      [{ cache: 'external' }, s.external.entries],
    ],
    ['cache'],
  ),
  gauge(
    'ctsyncd_cache_limit_entries',
    'Most entries the cache holds (cache.internalLimit, cache.externalLimit).',
    'internal.limit, external.limit',
    (s) => [
      [{ cache: 'internal' }, s.internal.limit],
      [{ cache: 'external' }, s.external.limit],
    ],
    ['cache'],
  ),
  counter(
    'ctsyncd_cache_operations_total',
    'Entries created, updated and destroyed in the cache.',
    'internal.{created,updated,destroyed}, external.{created,updated,deleted}',
    (s) =>
      perCache('op', (c) =>
        c === 'internal'
          ? { create: s.internal.created, update: s.internal.updated, destroy: s.internal.destroyed }
          : { create: s.external.created, update: s.external.updated, destroy: s.external.deleted },
      ),
    ['cache', 'op'],
  ),
  counter(
    'ctsyncd_cache_ignored_total',
    'Changes that left the cache as it was: nothing new (unchanged), delete of an uncached key (missing), older than the cached record (stale).',
    'internal.{unchanged,missing}, external.{missing,stale}',
    (s) => [
      ...by('reason', { unchanged: s.internal.unchanged, missing: s.internal.missing }, { cache: 'internal' }),
      ...by('reason', { missing: s.external.missing, stale: s.external.stale }, { cache: 'external' }),
    ],
    ['cache', 'reason'],
  ),
  counter(
    'ctsyncd_cache_refused_total',
    'New entries turned away because the cache was at its limit.',
    'internal.refused, external.refused',
    (s) => [
      [{ cache: 'internal' }, s.internal.refused],
      [{ cache: 'external' }, s.external.refused],
    ],
    ['cache'],
  ),
  counter(
    'ctsyncd_cache_removed_total',
    'Entries removed in bulk: by a flush, by the end of a peer’s bulk resync that no longer carried them, or those of a pruned peer to make room for a live one’s.',
    'internal.flushed, external.{flushed,bulkRemoved,released}',
    (s) => [
      [{ cache: 'internal', reason: 'flush' }, s.internal.flushed],
      [{ cache: 'external', reason: 'flush' }, s.external.flushed],
      [{ cache: 'external', reason: 'bulk_end' }, s.external.bulkRemoved],
      [{ cache: 'external', reason: 'released' }, s.external.released],
    ],
    ['cache', 'reason'],
  ),
  counter(
    'ctsyncd_external_shared_copies_total',
    'Keys two origins held at once (a committed node that took its peers’ entries as its own, a failover until the old primary’s purge): a delete that removed one origin’s copy while another still held the key (deleted), or a takeover that dropped the old origin’s copy because cache.externalLimit shadow copies were held (refused).',
    'external.{copyDeleted,shadowsRefused}',
    (s) => by('result', { deleted: s.external.copyDeleted, refused: s.external.shadowsRefused }),
    ['result'],
  ),
  counter(
    'ctsyncd_cache_filtered_total',
    'Kernel events and dump entries the filter rejected, by the rule that rejected them (events the kernel-side filter dropped never arrive, so are not counted).',
    'internal.filtered.*',
    (s) => by('reason', { ...s.internal.filtered }),
    ['reason'],
  ),
  counter(
    'ctsyncd_peer_entries_refused_total',
    'Peers’ entries kept out of the external cache: by the local filter rule that rejects them (protocol, address, tcp-state), expectation (an expectation filter.expectations rejects), or share (a new key from an origin already holding its share of cache.externalLimit or of the expectation limit).',
    'external.peerEntries.{filtered.*,expectFiltered,overShare}',
    (s) =>
      by('reason', {
        ...s.external.peerEntries.filtered,
        expectation: s.external.peerEntries.expectFiltered,
        share: s.external.peerEntries.overShare,
      }),
    ['reason'],
  ),
  counter(
    'ctsyncd_peer_entries_adjusted_total',
    'Peers’ entries stored with a field corrected: status (bits a peer may not set, cleared), timeout (lowered to the protocol’s kernel maximum).',
    'external.peerEntries.{statusStripped,timeoutCapped}',
    (s) => by('field', { status: s.external.peerEntries.statusStripped, timeout: s.external.peerEntries.timeoutCapped }),
    ['field'],
  ),
  gauge(
    'ctsyncd_cache_expectation_entries',
    'Expectations in the cache.',
    'internal.expectations.entries, external.expectations.entries',
    (s) => [
      [{ cache: 'internal' }, s.internal.expectations.entries],
      [{ cache: 'external' }, s.external.expectations.entries],
    ],
    ['cache'],
  ),
  counter(
    'ctsyncd_cache_expectation_operations_total',
    'Expectations created, updated and destroyed in the cache.',
    'internal.expectations.{created,updated,destroyed}, external.expectations.{created,updated,deleted}',
    (s) =>
      perCache('op', (c) => {
        const i = s.internal.expectations;
        const e = s.external.expectations;
        return c === 'internal'
          ? { create: i.created, update: i.updated, destroy: i.destroyed }
          : { create: e.created, update: e.updated, destroy: e.deleted };
      }),
    ['cache', 'op'],
  ),
  counter(
    'ctsyncd_cache_expectation_refused_total',
    'New expectations turned away because the cache was full.',
    'internal.expectations.refused, external.expectations.refused',
    (s) => [
      [{ cache: 'internal' }, s.internal.expectations.refused],
      [{ cache: 'external' }, s.external.expectations.refused],
    ],
    ['cache'],
  ),

  // --- kernel -----------------------------------------------------------
  counter(
    'ctsyncd_kernel_events_total',
    'Conntrack events received from the kernel, by type (after the kernel-side event filter).',
    'kernel.events.{new,update,destroy}',
    (s) => by('type', { new: s.kernel.events.new, update: s.kernel.events.update, destroy: s.kernel.events.destroy }),
    ['type'],
  ),
  counter(
    'ctsyncd_kernel_expectation_events_total',
    'Expectation events received from the kernel, by type.',
    'kernel.events.{expectNew,expectUpdate,expectDestroy}',
    (s) =>
      by('type', {
        new: s.kernel.events.expectNew,
        update: s.kernel.events.expectUpdate,
        destroy: s.kernel.events.expectDestroy,
      }),
    ['type'],
  ),
  counter(
    'ctsyncd_kernel_own_events_total',
    'Events caused by our own commits and injections that reached userspace (the BPF filter normally drops them in the kernel); never replicated.',
    'kernel.events.own',
    (s) => s.kernel.events.own ?? 0,
  ),
  counter(
    'ctsyncd_kernel_event_errors_total',
    'Kernel event messages that could not be used: undecodable (decode), of an unknown type (unknown), socket receive errors (receive).',
    'kernel.events.{decodeErrors,unknown,receiveErrors}',
    (s) =>
      by('reason', {
        decode: s.kernel.events.decodeErrors,
        unknown: s.kernel.events.unknown,
        receive: s.kernel.events.receiveErrors,
      }),
    ['reason'],
  ),
  counter(
    'ctsyncd_kernel_overruns_total',
    'Kernel event buffer overruns (ENOBUFS): events were lost and a resync with the kernel table follows.',
    'kernel.overruns',
    (s) => s.kernel.overruns,
  ),
  counter(
    'ctsyncd_kernel_overrun_resyncs_total',
    'Resyncs with the kernel table run because of an overrun.',
    'kernel.overrunResyncs',
    (s) => s.kernel.overrunResyncs,
  ),
  counter(
    'ctsyncd_kernel_resyncs_total',
    'Dumps of the kernel table reconciled with the internal cache, for any reason (startup, overrun, resync command, keepalived).',
    'internal.reconciles',
    (s) => s.internal.reconciles,
  ),
  gauge(
    'ctsyncd_kernel_receive_buffer_bytes',
    'Size of the kernel event socket receive buffer; it doubles after each overrun.',
    'kernel.receiveBufferBytes',
    (s) => s.kernel.receiveBufferBytes,
  ),
  gauge(
    'ctsyncd_kernel_read_ahead_max_bytes',
    'Most bytes of kernel events ever held read ahead of handling them (a burst waiting in the daemon instead of the kernel queue); four times kernel.netlinkBufferBytes (at most 1 GiB) bounds it.',
    'kernel.readAhead.maxHeldBytes',
    (s) => s.kernel.readAhead.maxHeldBytes,
  ),
  counter(
    'ctsyncd_kernel_read_ahead_limit_reached_total',
    'Times reading kernel events ahead stopped at its bound, leaving the rest in the kernel queue.',
    'kernel.readAhead.limitReached',
    (s) => s.kernel.readAhead.limitReached,
  ),
  gauge(
    'ctsyncd_kernel_own_event_filter_attached',
    'Whether the kernel-side filter dropping the events of our own commits is attached (1) or was refused (0).',
    'kernel.ownEventsFiltered',
    (s) => bool(s.kernel.ownEventsFiltered),
  ),
  gauge(
    'ctsyncd_kernel_event_filter_rule',
    'Whether the event socket\'s kernel filter applies this filter rule before events are queued (1) or userspace alone does (0: not configured, too long for the program, or refused by the kernel).',
    'kernel.eventFilter.rules',
    (s) => EVENT_FILTER_RULES.map((rule) => [{ rule }, bool(s.kernel.eventFilter.rules.includes(rule))] as const),
    ['rule'],
  ),
  counter(
    'ctsyncd_kernel_requests_total',
    'ctnetlink request batches (commit, inject, flush) and table dumps sent to the kernel.',
    'kernel.link.{batches,dumps}',
    (s) => by('kind', { batch: s.kernel.link.batches, dump: s.kernel.link.dumps }),
    ['kind'],
  ),
  counter(
    'ctsyncd_kernel_batch_messages_total',
    'Messages sent to the kernel in request batches.',
    'kernel.link.batchMessages',
    (s) => s.kernel.link.batchMessages ?? 0,
  ),
  counter(
    'ctsyncd_kernel_batch_failures_total',
    'Batched messages the kernel answered with an error.',
    'kernel.link.batchFailures',
    (s) => s.kernel.link.batchFailures ?? 0,
  ),
  counter(
    'ctsyncd_kernel_dump_entries_total',
    'Entries read from kernel table dumps.',
    'kernel.link.dumpEntries',
    (s) => s.kernel.link.dumpEntries ?? 0,
  ),
  counter(
    'ctsyncd_kernel_request_errors_total',
    'Kernel requests that timed out, and replies that could not be decoded.',
    'kernel.link.{timeouts,decodeErrors}',
    (s) => by('reason', { timeout: s.kernel.link.timeouts, decode: s.kernel.link.decodeErrors }),
    ['reason'],
  ),

  // --- commit and inject ------------------------------------------------
  counter(
    'ctsyncd_commit_entries_total',
    'Entries of the external cache written to the kernel by commits, by result (failed includes expectations).',
    'commit.{committed,updated,unchanged,failed}',
    (s) =>
      by('result', {
        committed: s.commit.committed,
        updated: s.commit.updated,
        unchanged: s.commit.unchanged,
        failed: s.commit.failed,
      }),
    ['result'],
  ),
  gauge('ctsyncd_commit_running', 'Whether a commit is running now.', 'commit.running', (s) => bool(s.commit.running)),
  gauge(
    'ctsyncd_commit_last_duration_seconds',
    'Duration of the last commit; 0 before the first one (commits are rare: the histogram shows nothing once they leave its rate window).',
    'commit.lastDurationMs',
    (s) => (s.commit.lastDurationMs ?? 0) / 1000,
  ),
  counter(
    'ctsyncd_inject_entries_total',
    'Peer changes written straight into the kernel (failover.inject), by result; absent when inject is off.',
    'inject.{created,updated,replaced,deleted,failed}',
    (s) =>
      s.inject.enabled
        ? by('result', {
            created: s.inject.created,
            updated: s.inject.updated,
            replaced: s.inject.replaced,
            deleted: s.inject.deleted,
            failed: s.inject.failed,
          })
        : [],
    ['result'],
  ),
  gauge('ctsyncd_inject_queue_length', 'Peer changes waiting to be injected.', 'inject.queued', (s) => s.inject.queued ?? 0),

  // --- flow log (flowlog) ------------------------------------------------
  counter(
    'ctsyncd_flowlog_records_total',
    'Flow log records handed to the outputs (the file, syslog, IPFIX); 0 without flowlog.',
    'flowlog.logged',
    (s) => s.flowlog?.logged ?? 0,
  ),
  counter(
    'ctsyncd_flowlog_dropped_total',
    'Flow log records lost (no samples without flowlog), by reason: queue_full (the writer was behind and the bounded queue full; replication never waits for it), write_error (a write to the file failed, e.g. a full disk), ipfix_unsent (an IPFIX message not sent: the collector is down or the socket stuck; with flowlog.ipfix) or syslog_unsent (the syslog socket refused or had no room; with flowlog.syslog). Each output counts its own.',
    'flowlog.{queueFull,lost,ipfix.unsent,syslog.unsent}',
    (s) =>
      s.flowlog?.enabled
        ? by('reason', {
            queue_full: s.flowlog.queueFull,
            write_error: s.flowlog.lost,
            ...(s.flowlog.ipfix ? { ipfix_unsent: s.flowlog.ipfix.unsent } : {}),
            ...(s.flowlog.syslog ? { syslog_unsent: s.flowlog.syslog.unsent } : {}),
          })
        : [],
    ['reason'],
  ),
  counter(
    'ctsyncd_flowlog_sent_total',
    'Flow log records the other outputs sent, by output: ipfix (data records in messages the kernel took) and syslog (messages); no samples for an output not configured.',
    'flowlog.{ipfix.records,syslog.sent}',
    (s) =>
      by('output', {
        ...(s.flowlog?.ipfix ? { ipfix: s.flowlog.ipfix.records } : {}),
        ...(s.flowlog?.syslog ? { syslog: s.flowlog.syslog.sent } : {}),
      }),
    ['output'],
  ),
  gauge(
    'ctsyncd_flowlog_queue_bytes',
    'Bytes of events waiting in the flow log queue (flowlog.queueBytes at most).',
    'flowlog.queueBytes',
    (s) => s.flowlog?.queueBytes ?? 0,
  ),

  // --- sync links (per configured channel) -----------------------------
  counter(
    'ctsyncd_sync_datagrams_total',
    'Datagrams sent and received on each sync channel (a UDP channel with n peers sends n per message batch).',
    'sync.channels[].counters.{datagramsSent,datagramsReceived}',
    (s) =>
      s.sync.channels.flatMap((ch) =>
        by('direction', { sent: ch.counters.datagramsSent, received: ch.counters.datagramsReceived }, { link: ch.name }),
      ),
    ['link', 'direction'],
  ),
  counter(
    'ctsyncd_sync_bytes_total',
    'Bytes sent and received on each sync channel (UDP payload).',
    'sync.channels[].counters.{bytesSent,bytesReceived}',
    (s) =>
      s.sync.channels.flatMap((ch) =>
        by('direction', { sent: ch.counters.bytesSent, received: ch.counters.bytesReceived }, { link: ch.name }),
      ),
    ['link', 'direction'],
  ),
  counter(
    'ctsyncd_sync_errors_total',
    'Failed sends and socket receive errors on each sync channel.',
    'sync.channels[].counters.{sendErrors,receiveErrors}',
    (s) =>
      s.sync.channels.flatMap((ch) =>
        by('direction', { sent: ch.counters.sendErrors, received: ch.counters.receiveErrors }, { link: ch.name }),
      ),
    ['link', 'direction'],
  ),
  counter(
    'ctsyncd_sync_channel_dropped_datagrams_total',
    'Datagrams a sync channel dropped before decoding, by source: own (one of our addresses, multicast loopback), not_peer (a UDP source that is none of sync.udp.peers).',
    'sync.channels[].counters.{droppedOwnSource,droppedNotPeer}',
    (s) =>
      s.sync.channels.flatMap((ch) =>
        by('reason', { own: ch.counters.droppedOwnSource, not_peer: ch.counters.droppedNotPeer }, { link: ch.name }),
      ),
    ['link', 'reason'],
  ),
  gauge(
    'ctsyncd_sync_link_up',
    'Whether the network link of the sync channel is up.',
    'sync.channels[].link',
    (s) => s.sync.channels.map((ch) => [{ link: ch.name }, bool(ch.link === 'up')] as const),
    ['link'],
  ),
  gauge(
    'ctsyncd_sync_link_active',
    'Whether the sync channel is the one in use (1) or a standby (0).',
    'sync.channels[].active',
    (s) => s.sync.channels.map((ch) => [{ link: ch.name }, bool(ch.active)] as const),
    ['link'],
  ),

  // --- sync engine ------------------------------------------------------
  counter(
    'ctsyncd_sync_messages_total',
    'Replication messages sent (entries, packed into datagrams) and received.',
    'sync.sender.messagesSent, sync.counters.messagesReceived',
    (s) => by('direction', { sent: s.sync.sender?.messagesSent, received: s.sync.counters?.messagesReceived }),
    ['direction'],
  ),
  counter(
    'ctsyncd_sync_applied_messages_total',
    'Received data messages applied to the external cache.',
    'sync.counters.applied',
    (s) => s.sync.counters?.applied ?? 0,
  ),
  counter(
    'ctsyncd_sync_merged_updates_total',
    'Local changes merged into a change of the same entry still waiting to be sent.',
    'sync.sender.merged',
    (s) => s.sync.sender?.merged ?? 0,
  ),
  counter(
    'ctsyncd_sync_acks_total',
    'Acknowledgements sent and received (ftfw mode).',
    'sync.counters.{acksSent,acksReceived}',
    (s) => by('direction', { sent: s.sync.counters?.acksSent, received: s.sync.counters?.acksReceived }),
    ['direction'],
  ),
  counter(
    'ctsyncd_sync_nacks_total',
    'Negative acknowledgements (requests to resend a gap) sent and received.',
    'sync.counters.{nacksSent,nacksReceived}',
    (s) => by('direction', { sent: s.sync.counters?.nacksSent, received: s.sync.counters?.nacksReceived }),
    ['direction'],
  ),
  counter(
    'ctsyncd_sync_nacked_messages_total',
    'Messages named by the NACKs this node sent.',
    'sync.counters.nackedMessages',
    (s) => s.sync.counters?.nackedMessages ?? 0,
  ),
  counter(
    'ctsyncd_sync_retransmits_total',
    'Messages resent, after a NACK or an ack timeout.',
    'sync.counters.retransmits',
    (s) => s.sync.counters?.retransmits ?? 0,
  ),
  counter(
    'ctsyncd_sync_retransmit_timeouts_total',
    'Ack timeouts that triggered a retransmission.',
    'sync.counters.retransmitTimeouts',
    (s) => s.sync.counters?.retransmitTimeouts ?? 0,
  ),
  gauge(
    'ctsyncd_sync_resend_queue_length',
    'Sent messages kept until every peer acknowledged them.',
    'sync.resendQueue.length',
    (s) => s.sync.resendQueue?.length ?? 0,
  ),
  gauge(
    'ctsyncd_sync_resend_queue_capacity',
    'Size of the resend queue (sync.reliability.resendQueueSize).',
    'sync.resendQueue.capacity',
    (s) => s.sync.resendQueue?.capacity ?? 0,
  ),
  counter(
    'ctsyncd_sync_resend_overflows_total',
    'Peers found still missing a message the full resend queue had to drop (a bulk resync repairs them).',
    'sync.counters.resendOverflows',
    (s) => s.sync.counters?.resendOverflows ?? 0,
  ),
  gauge(
    'ctsyncd_sync_send_queue_length',
    'Local changes waiting to be packed and sent.',
    'sync.sender.queueLength',
    (s) => s.sync.sender?.queueLength ?? 0,
  ),
  counter(
    'ctsyncd_sync_dropped_datagrams_total',
    'Received datagrams rejected, by reason: auth (HMAC), version, decode, cluster (another cluster id), truncated, magic, size, value.',
    'sync.counters.datagramsDropped.*',
    (s) => {
      const counts: Record<string, number> = {};
      for (const reason of Object.values(DROP_REASONS)) counts[reason] = 0;
      for (const [code, n] of Object.entries(s.sync.counters?.datagramsDropped ?? {})) {
        const reason = dropReason(code);
        counts[reason] = (counts[reason] ?? 0) + n;
      }
      return by('reason', counts);
    },
    ['reason'],
  ),
  counter(
    'ctsyncd_sync_ignored_datagrams_total',
    'Valid datagrams ignored: our own (multicast loopback), of an epoch older than the peer’s believed one (late or replayed), of an epoch not verified by a challenge yet.',
    'sync.counters.{ownDatagrams,staleEpochDatagrams,unverifiedDatagrams}',
    (s) =>
      by('reason', {
        own: s.sync.counters?.ownDatagrams,
        stale_epoch: s.sync.counters?.staleEpochDatagrams,
        unverified_epoch: s.sync.counters?.unverifiedDatagrams,
      }),
    ['reason'],
  ),
  counter(
    'ctsyncd_sync_challenges_total',
    'Freshness challenges: sent to peers whose epoch is not verified, received, answered, and not answered (already answered, or too soon).',
    'sync.counters.{challengesSent,challengesReceived,challengesAnswered,challengesIgnored}',
    (s) =>
      by('op', {
        sent: s.sync.counters?.challengesSent,
        received: s.sync.counters?.challengesReceived,
        answered: s.sync.counters?.challengesAnswered,
        ignored: s.sync.counters?.challengesIgnored,
      }),
    ['op'],
  ),
  counter(
    'ctsyncd_sync_challenge_responses_total',
    'Responses to our challenges: accepted (the peer’s epoch is verified) and ignored (no such challenge pending: replayed or late).',
    'sync.counters.{responsesAccepted,responsesIgnored}',
    (s) =>
      by('result', { accepted: s.sync.counters?.responsesAccepted, ignored: s.sync.counters?.responsesIgnored }),
    ['result'],
  ),
  counter(
    'ctsyncd_sync_stale_resync_requests_total',
    'Resync requests dropped: for another epoch of ours, or a request number already honoured (replayed).',
    'sync.counters.staleRequests',
    (s) => s.sync.counters?.staleRequests ?? 0,
  ),
  counter(
    'ctsyncd_sync_epoch_rollovers_total',
    'New epochs this node took after 2^30 sequence numbers in one, long before they could wrap.',
    'sync.counters.epochRollovers',
    (s) => s.sync.counters?.epochRollovers ?? 0,
  ),
  counter(
    'ctsyncd_sync_warnings_suppressed_total',
    'Per-datagram warnings (drops, stale epochs) not logged: one line per kind per 10 s says how many it stands for.',
    'sync.counters.warningsSuppressed',
    (s) => s.sync.counters?.warningsSuppressed ?? 0,
  ),
  counter(
    'ctsyncd_sync_refused_datagrams_total',
    'Valid datagrams of node ids not admitted, dropped before anything was kept for them: unknown_node (not in cluster.nodes), node_limit (cluster.maxNodes peers already tracked).',
    'sync.admission.counters.{unknownNode,nodeLimit}',
    (s) =>
      by('reason', {
        unknown_node: s.sync.admission?.counters.unknownNode,
        node_limit: s.sync.admission?.counters.nodeLimit,
      }),
    ['reason'],
  ),
  gauge(
    'ctsyncd_sync_tracked_peers',
    'Peers this node keeps state for (at most cluster.maxNodes).',
    'sync.admission.tracked',
    (s) => s.sync.admission?.tracked ?? 0,
  ),
  counter(
    'ctsyncd_sync_pruned_peers_total',
    'Peers whose sync state was freed after cluster.pruneAfterMs down.',
    'sync.admission.counters.pruned',
    (s) => s.sync.admission?.counters.pruned ?? 0,
  ),
  counter(
    'ctsyncd_sync_duplicate_messages_total',
    'Received messages dropped as already received.',
    'sync.counters.duplicates',
    (s) => s.sync.counters?.duplicates ?? 0,
  ),
  counter(
    'ctsyncd_sync_gaps_total',
    'Gaps noticed in a peer’s message sequence.',
    'sync.counters.gapsDetected',
    (s) => s.sync.counters?.gapsDetected ?? 0,
  ),
  counter(
    'ctsyncd_sync_lost_messages_total',
    'Messages never received (notrack mode: gaps are not repaired).',
    'sync.counters.lostMessages',
    (s) => s.sync.counters?.lostMessages ?? 0,
  ),
  counter(
    'ctsyncd_sync_bulks_total',
    'Bulk resyncs (full state transfers) queued for peers (sent) and completed from peers (received).',
    'sync.counters.{bulksSent,bulksReceived}',
    (s) => by('direction', { sent: s.sync.counters?.bulksSent, received: s.sync.counters?.bulksReceived }),
    ['direction'],
  ),
  counter(
    'ctsyncd_sync_bulk_entries_sent_total',
    'Entries queued in bulk resyncs for peers.',
    'sync.counters.bulkEntriesSent',
    (s) => s.sync.counters?.bulkEntriesSent ?? 0,
  ),
  counter(
    'ctsyncd_sync_resync_requests_total',
    'Requests for a peer’s full state, sent and received.',
    'sync.counters.{resyncRequestsSent,resyncRequestsReceived}',
    (s) =>
      by('direction', {
        sent: s.sync.counters?.resyncRequestsSent,
        received: s.sync.counters?.resyncRequestsReceived,
      }),
    ['direction'],
  ),
  gauge(
    'ctsyncd_sync_auth',
    'How sync datagrams are authenticated, 1 for the configured mode: hmac (signed with the sync.auth keys, unsigned ones dropped) or none (sync.auth: none, anything that reaches the sync port is believed).',
    'sync.auth',
    (s) => SYNC_AUTH_MODES.map((mode) => [{ mode }, bool(s.sync.auth === mode)] as const),
    ['mode'],
  ),
  gauge(
    'ctsyncd_sync_in_sync',
    'Whether this node holds the full state of every peer it knows (what failover.trackFile reports).',
    'failover.inSync',
    (s) => bool(s.failover.inSync),
  ),

  // --- peers ------------------------------------------------------------
  gauge(
    'ctsyncd_peer_up',
    'Whether the peer was heard from recently (1) or is unknown/down (0).',
    'peers[].state',
    (s) => s.peers.map((p) => [{ peer: p.id }, bool(p.state === 'up')] as const),
    ['peer'],
  ),
  gauge(
    'ctsyncd_peer_last_seen_age_seconds',
    'Seconds since the last valid datagram from the peer (0.1 s resolution).',
    'peers[].lastSeenAgeSeconds',
    (s) => s.peers.map((p) => [{ peer: p.id }, p.lastSeenAgeSeconds] as const),
    ['peer'],
  ),
  counter(
    'ctsyncd_peer_restarts_total',
    'Times the peer came back with a new epoch (it restarted).',
    'peers[].restarts',
    (s) => s.peers.map((p) => [{ peer: p.id }, p.restarts] as const),
    ['peer'],
  ),
  gauge(
    'ctsyncd_peer_synced',
    'Whether a bulk resync from the peer has completed (its state is complete here).',
    'peers[].rx.synced',
    (s) => s.peers.flatMap((p) => (p.rx ? [[{ peer: p.id }, bool(p.rx.synced)] as const] : [])),
    ['peer'],
  ),
  gauge(
    'ctsyncd_peer_unacked_messages',
    'Messages sent that the peer has not acknowledged yet (ftfw mode).',
    'peers[].tx.unacked',
    (s) => s.peers.flatMap((p) => (p.tx ? [[{ peer: p.id }, p.tx.unacked] as const] : [])),
    ['peer'],
  ),
  counter(
    'ctsyncd_peer_transitions_total',
    'Peer state changes to up and to down, all peers together.',
    'sync.peerCounters.{ups,downs}',
    (s) => by('to', { up: s.sync.peerCounters?.ups, down: s.sync.peerCounters?.downs }),
    ['to'],
  ),

  // --- control socket ---------------------------------------------------
  gauge('ctsyncd_control_connections', 'Control socket connections open now.', 'control.open', (s) => s.control.open ?? 0),
  counter(
    'ctsyncd_control_requests_total',
    'Control requests by result: ok, failed (the command failed or its reply could not be sent), bad (malformed or unknown command).',
    'control.{requests,failedRequests,badRequests}',
    (s) =>
      by('result', {
        ok: (s.control.requests ?? 0) - (s.control.failedRequests ?? 0),
        failed: s.control.failedRequests,
        bad: s.control.badRequests,
      }),
    ['result'],
  ),
  counter(
    'ctsyncd_control_reserve_requests_total',
    'Requests (failover, commit, stats, ping) answered on a reserve connection because every regular connection was taken.',
    'control.reserveServed',
    (s) => s.control.reserveServed ?? 0,
  ),
  counter(
    'ctsyncd_control_dropped_connections_total',
    'Control connections closed by the daemon: deadline (request not complete in time, or idle), unread_reply (deadline reached with reply bytes the client did not read), unread_limit (waiting for its reader while the replies of all readers together were over 512 MiB), refused (beyond every connection and reserve slot, or another command than the reserved ones).',
    'control.{deadlineClosed,outputStalled,outputDropped,refused}',
    (s) =>
      by('reason', {
        deadline: (s.control.deadlineClosed ?? 0) - (s.control.outputStalled ?? 0),
        unread_reply: s.control.outputStalled,
        unread_limit: s.control.outputDropped,
        refused: s.control.refused,
      }),
    ['reason'],
  ),

  // --- failover (keepalived notify FIFO) --------------------------------
  gauge(
    'ctsyncd_failover_state',
    'The last keepalived state followed through failover.notifyFifo (1 for the current one); absent without the FIFO.',
    'failover.keepalivedState',
    (s) =>
      s.failover.sequencer
        ? (['primary', 'backup', 'fault', 'stop'] as const).map((st) => [{ state: st }, bool(s.failover.keepalivedState === st)] as const)
        : [],
    ['state'],
  ),
  counter(
    'ctsyncd_failover_transitions_total',
    'keepalived state changes acted on.',
    'failover.sequencer.transitions',
    (s) => s.failover.sequencer?.transitions ?? 0,
  ),
  counter(
    'ctsyncd_failover_step_failures_total',
    'Failover steps (commit, flush, resync, ...) that failed or timed out.',
    'failover.sequencer.stepFailures',
    (s) => s.failover.sequencer?.stepFailures ?? 0,
  ),
];

/** Commit durations range from milliseconds (a few entries) to minutes (millions). */
export const COMMIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export const COMMIT_DURATION = 'ctsyncd_commit_duration_seconds';
export const BUILD_INFO = 'ctsyncd_build_info';

export interface CtsyncdMetricsOptions {
  /** process_* and nodejs_* (event-loop lag, heap, GC, fds); default true. */
  defaultMetrics?: boolean;
  /** Reported by ctsyncd_build_info; read from package.json when absent. */
  version?: string;
}

/** The private registry with every ctsyncd metric, reading `snapshot` at scrape time. */
export class CtsyncdMetrics {
  readonly registry = new Registry();
  private readonly commitDuration: Histogram;
  /** The snapshot of the scrape in progress; undefined between scrapes. */
  private current: StatsSnapshot | undefined;

  constructor(
    private readonly snapshot: () => StatsSnapshot,
    opts: CtsyncdMetricsOptions = {},
  ) {
    const registers = [this.registry];
    const snap = () => this.current ?? this.snapshot();
    for (const def of METRIC_DEFS) {
      const samples = (s: StatsSnapshot): Sample[] => {
        const r = def.read(s);
        return typeof r === 'number' ? [[{}, r]] : r;
      };
      const base = { name: def.name, help: `${def.help} Source: ${def.source}.`, labelNames: [...def.labelNames], registers };
      if (def.type === 'counter') {
        new Counter({
          ...base,
          collect() {
            this.reset();
            // A counter cannot go negative; a bad value must not fail the whole scrape.
            for (const [labels, v] of samples(snap())) if (Number.isFinite(v) && v >= 0) this.inc(labels, v);
          },
        });
      } else {
        new Gauge({
          ...base,
          collect() {
            this.reset();
            for (const [labels, v] of samples(snap())) this.set(labels, v);
          },
        });
      }
    }
    this.commitDuration = new Histogram({
      name: COMMIT_DURATION,
      help: 'Duration of each commit of the external cache into the kernel (from the command to the last kernel ack). Source: one observation per commit.lastDurationMs.',
      buckets: COMMIT_BUCKETS,
      registers,
    });
    const info = new Gauge({
      name: BUILD_INFO,
      help: 'ctsyncd version and the Node.js version it runs on; always 1.',
      labelNames: ['version', 'node_version'],
      registers,
    });
    info.set({ version: opts.version ?? packageVersion(), node_version: process.version }, 1);
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One observation per finished commit (CommitRunner, via the daemon). */
  observeCommit(durationMs: number): void {
    if (Number.isFinite(durationMs) && durationMs >= 0) this.commitDuration.observe(durationMs / 1000);
  }

  /** The text exposition; every metric of it reads the same snapshot. */
  async scrape(): Promise<string> {
    this.current = this.snapshot();
    try {
      return await this.registry.metrics();
    } finally {
      this.current = undefined;
    }
  }
}

function packageVersion(): string {
  try {
    // src/stats/ and dist/stats/ both sit two levels below the package root.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
