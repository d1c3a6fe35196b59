// Frame builders and parsers for the virtio-net data layer, re-exported in one place. Each
// module owns one protocol; see its header comment.

export * from './addr.js';
export * from './ethernet.js';
export * from './arp.js';
export * from './ipv4.js';
export * from './ipv6.js';
export * from './icmp.js';
export * from './udp.js';
export * from './tcp.js';
export * from './l4.js';
export * from './build.js';
export * from './packet.js';
