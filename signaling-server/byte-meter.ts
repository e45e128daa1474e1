import type { Metrics, MultiaddrConnection } from '@libp2p/interface';

/**
 * The smallest libp2p Metrics component that counts the bytes the server receives on every raw
 * connection (relayed traffic is received once and sent once, so this is the relay's load). Named
 * metrics libp2p registers are accepted and dropped: /metrics reports its own figures.
 */
export function byteMeter(): { metrics: () => Metrics; bytesIn: () => number } {
  let received = 0;
  const noop = () => undefined;
  const metric = { update: noop, increment: noop, decrement: noop, reset: noop, observe: noop, timer: () => noop };
  const group = () => metric;
  const impl = {
    trackMultiaddrConnection(maConn: MultiaddrConnection): void {
      maConn.addEventListener('message', (e) => {
        received += e.data.byteLength;
      });
    },
    trackProtocolStream: noop,
    registerMetric: group,
    registerMetricGroup: group,
    registerCounter: group,
    registerCounterGroup: group,
    registerHistogram: group,
    registerHistogramGroup: group,
    registerSummary: group,
    registerSummaryGroup: group,
    traceFunction: <F>(_name: string, fn: F) => fn,
    createTrace: noop,
  };
  return { metrics: () => impl as unknown as Metrics, bytesIn: () => received };
}
