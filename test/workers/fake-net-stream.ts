// The fake net-stream workload (see fake-net.ts), loaded by absolute path in the study tests.
export { streamGuest as guest, streamHost as host } from './fake-net.js';
