// Sends one identify and one track through each Node SDK, unmodified, to the collector.
// Usage: node send.mjs COLLECTOR_URL WRITE_KEY MARKER   (exits non-zero when an SDK reports an error)
import { Analytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';

const [collector, writeKey, marker] = process.argv.slice(2);
const errors = [];

const segment = new Analytics({ writeKey, host: collector, maxRetries: 2 });
segment.on('error', (err) => errors.push(`segment: ${err.code ?? ''} ${err.reason ?? err}`));
segment.identify({ userId: `${marker}-seg`, traits: { email: `${marker}-seg@example.cn` },
  messageId: `${marker}-segment-identify` });
segment.track({ userId: `${marker}-seg`, event: 'Order Completed', properties: { revenue: 42 },
  messageId: `${marker}-segment-track` });
await segment.closeAndFlush({ timeout: 20000 });

const rudder = new RudderAnalytics(writeKey, {
  dataPlaneUrl: collector, retryCount: 2,
  errorHandler: (err) => errors.push(`rudderstack: ${err}`),
});
rudder.identify({ userId: `${marker}-rud`, traits: { email: `${marker}-rud@example.cn` },
  messageId: `${marker}-rudder-identify` });
rudder.track({ userId: `${marker}-rud`, event: 'Order Completed', properties: { revenue: 42 },
  messageId: `${marker}-rudder-track` });
await new Promise((resolve, reject) => rudder.flush((err) => (err ? reject(err) : resolve())));

if (errors.length) {
  console.error(errors.join('\n'));
  process.exit(1);
}
