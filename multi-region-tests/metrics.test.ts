// The OpenTelemetry metrics of region nodes, scraped from /metrics as Prometheus would and
// parsed: produce, dispatch and backlog per topic; per link backlog, delay, state and
// shipped entries; the commit-to-commit delay histogram; the HLC watermark; and a
// partition showing up as backlog and delay on the cut link.
import test from 'ava';
import { parsePrometheusText, sampleValue, type Sample } from '../test-support/prometheus.ts';
import { waitFor } from '../test-support/processes.ts';
import { Cluster } from './cluster.ts';

async function scrape(cluster: Cluster, region: string): Promise<Sample[]> {
  const response = await fetch(`http://127.0.0.1:${cluster.regions.get(region)?.adminPort}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return parsePrometheusText(await response.text());
}

test.serial('metrics: /metrics of two regions report produce, dispatch, backlog, replication per link, the delay histogram and watermarks; a partition shows as backlog and delay', async (t) => {
  const cluster = await Cluster.start({ regions: ['shanghai', 'beijing'], transport: 'insecure' });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/metered';
  await cluster.createTopic('shanghai', topic);
  const startedMs = Date.now();
  const producer = await cluster.client('shanghai').createProducer({ topic, producerName: 'meter' });
  for (let i = 0; i < 120; i++) await producer.send({ payload: `m${i}` });
  const consumer = await cluster.client('beijing').subscribe({ topic, subscription: 'audit', initialPosition: 'earliest' });
  for (let i = 0; i < 50; i++) consumer.ack(await consumer.receive(10_000));
  await cluster.waitConverged(topic, 30_000);
  const lastWriteMs = Date.now();

  const dest = { messaging_destination_name: topic };
  const sh = await scrape(cluster, 'shanghai');
  t.is(sampleValue(sh, 'admq_broker_messages_published_total', dest), 120);
  const payloadBytes = Array.from({ length: 120 }, (_, i) => `m${i}`.length).reduce((a, b) => a + b, 0);
  t.is(sampleValue(sh, 'admq_broker_bytes_published_total', dest), payloadBytes);
  t.is(sampleValue(sh, 'admq_replication_entries_shipped_total', { ...dest, admq_region_from: 'shanghai', admq_region_to: 'beijing' }), 120);
  t.is(sampleValue(sh, 'admq_replication_backlog_entries', { ...dest, admq_region_from: 'shanghai', admq_region_to: 'beijing' }), 0);
  t.is(sampleValue(sh, 'admq_replication_link_state', { ...dest, admq_region_from: 'shanghai', admq_region_to: 'beijing', admq_link_state: 'connected' }), 1);
  // The log store's chunk cache: within its bound, and the link read recent chunks from it.
  const cached = sampleValue(sh, 'admq_storage_chunk_cache_entries', {}) ?? -1;
  t.true(cached > 0 && cached <= 4096, `chunk cache entries ${cached}`);
  t.true((sampleValue(sh, 'admq_storage_chunk_cache_bytes', {}) ?? 0) > 0);
  t.true((sampleValue(sh, 'admq_storage_chunk_cache_hits_total', {}) ?? 0) > 0);
  t.not(sampleValue(sh, 'admq_storage_chunk_cache_misses_total', {}), undefined);

  const bj = await scrape(cluster, 'beijing');
  t.is(sampleValue(bj, 'admq_broker_messages_published_total', dest), 120, 'replicated entries are appended too');
  t.is(sampleValue(bj, 'admq_topic_entries', dest), 120);
  await waitFor(async () => sampleValue(await scrape(cluster, 'beijing'), 'admq_broker_backlog', { ...dest, messaging_consumer_group_name: 'audit' }) === 70, 10_000, 'backlog 70 after 50 acks');
  t.true((sampleValue(bj, 'admq_broker_messages_dispatched_total', { ...dest, messaging_consumer_group_name: 'audit' }) ?? 0) >= 50);
  const origin = { ...dest, admq_region_origin: 'shanghai' };
  t.is(sampleValue(bj, 'admq_replication_commit_delay_count', origin), 120, 'one delay observation per replicated entry');
  t.is(sampleValue(bj, 'admq_replication_commit_delay_bucket', { ...origin, le: '+Inf' }), 120);
  const watermark = sampleValue(bj, 'admq_replication_watermark', origin) as number;
  t.true(watermark >= startedMs && watermark <= Date.now(), `watermark ${watermark} within the run (${startedMs}…)`);
  t.true(watermark >= lastWriteMs - 5_000);

  // A partition: the cut link reports a backlog and a delay that is never 0.
  cluster.partition('beijing');
  for (let i = 0; i < 30; i++) await producer.send({ payload: `cut${i}` });
  await waitFor(
    async () => {
      const s = await scrape(cluster, 'shanghai');
      const link = { ...dest, admq_region_from: 'shanghai', admq_region_to: 'beijing' };
      return sampleValue(s, 'admq_replication_backlog_entries', link) === 30 && (sampleValue(s, 'admq_replication_delay', link) ?? 0) > 0;
    },
    20_000,
    'backlog and delay on the cut link',
  );
  cluster.heal();
  await cluster.waitConverged(topic, 30_000);
  t.is(sampleValue(await scrape(cluster, 'beijing'), 'admq_replication_commit_delay_count', origin), 150);
});
