// The fake net-ping workload (see fake-net.ts), loaded by absolute path in the study tests.
export { pingGuest as guest, pingHost as host } from './fake-net.js';
