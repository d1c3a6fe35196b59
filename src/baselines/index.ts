// Public surface of the peer baselines (`virtq bench peers`): the case registry and scheduler, the
// individual case runners, the pair harness a new case builds on, and the report formatter.

export {
  peerCases,
  registerLatencyCase,
  registerPeerCase,
  runPeersBench,
  spread,
  type LatencyCaseEntry,
  type LatencyCaseRunner,
  type PeerCaseEntry,
  type PeerCaseRunner,
  type RegisterOptions,
  type ThroughputCaseEntry,
} from './registry.js';
export { formatPeersTable } from './format.js';
export { BARE_RING_CASE, defaultPublishEvery, runBareRing, type BareRingOptions } from './bare-ring.js';
export {
  POSTMESSAGE_ACK_EVERY,
  POSTMESSAGE_COPY_CASE,
  POSTMESSAGE_TRANSFER_CASE,
  POSTMESSAGE_WINDOW,
  runPostMessageCopy,
  runPostMessageTransfer,
} from './postmessage.js';
export { RINGBUF_JS_CASE, runRingbufJs } from './ringbuf-js.js';
export { VIRTQ_PACKED_CASE, VIRTQ_PACKED_INORDER_CASE, VIRTQ_PACKED_PINGPONG_CASE, VIRTQ_PINGPONG_CASE, VIRTQ_QUEUE_SIZE, VIRTQ_RING_CASE, VIRTQ_RING_INORDER_CASE, runVirtqPingPong, runVirtqRing, waitSettingsOf } from './virtq-ring.js';
export { ATOMICS_PINGPONG_CASE, ATOMICS_PINGPONG_2LINES_CASE, ATOMICS_PINGPONG_3LINES_CASE, runAtomicsPingPong, type PingPongLines } from './atomics-pingpong.js';
export {
  defaultWarmupMs,
  failedResult,
  runWorkerPair,
  throughputResult,
  type PairOutcome,
  type PairSide,
  type PairSpec,
  type ResultLabels,
  type WakeWord,
} from './harness.js';
export {
  CTL_CONSUMED,
  CTL_PHASE,
  PHASE_MEASURE,
  PHASE_SETUP,
  PHASE_STOP,
  PHASE_WARMUP,
  PeerWorkerContext,
  WAIT_TIMEOUT_MS,
  type PeerWorkerEntry,
  type WorkerOutcome,
  type WorkerReport,
} from './control.js';
export { packetGeometry, RING_SLOTS, SLOT_BYTES, type PacketGeometry } from './packets.js';
export {
  DEFAULT_STRATEGIES,
  parseStrategy,
  REFERENCE_STRATEGY,
  type KickStrategy,
  type LatencyRunContext,
  type PeerCaseResult,
  type PeerCaseSummary,
  type PeerRunContext,
  type PeersBenchOptions,
  type PeersReport,
  type PingPongResult,
  type PingPongSummary,
  type Spread,
} from './types.js';
