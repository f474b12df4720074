import test from 'ava';
import { buildSamples, type Counters, type LinkObservation, type Observation } from './sampler.ts';
import { LinkStateValue, type Sample } from './series.ts';

const NOW = 1_800_000_000_000;

function link(topic: string, to: string, extra: Partial<LinkObservation> = {}): LinkObservation {
  return { topic, to, state: 'connected', backlogEntries: 0, backlogBytesEstimate: 0, replicationDelayMs: 0, duplicatesAtRemote: 0, residencyBlocked: 0, clockSkewRefusals: 0, entriesShipped: 0, reconnects: 0, ...extra };
}

function observation(extra: Partial<Observation> = {}): Observation {
  return {
    region: 'shanghai',
    nowMs: NOW,
    neighbours: ['beijing', 'shenzhen'],
    links: [],
    receiver: { residencyRefusals: 0, unauthorizedRefusals: 0, clockSkewRefusals: 0, maxClockSkewMs: 0, entriesAppended: 0, duplicates: 0 },
    watermarks: {},
    namespaces: [
      { namespace: 'bank/pay', replicationSet: ['shanghai', 'beijing', 'shenzhen'], mayHold: true, topics: 2, conflictsRecorded: 0, writesRefusedResidency: 0 },
      { namespace: 'bank/local', replicationSet: ['shanghai'], mayHold: true, topics: 1, conflictsRecorded: 0, writesRefusedResidency: 0 },
    ],
    ...extra,
  };
}

function find(samples: Sample[], kind: string, namespace: string, from: string, to: string): Sample | undefined {
  return samples.find((s) => s.series.kind === kind && s.series.namespace === namespace && s.series.from === from && s.series.to === to);
}

const EMPTY: Counters = { volatile: {}, durable: {} };

test('sampler: a pair takes the worst lag of its namespace\'s links and the sums of their backlogs; one link down makes the pair down', (t) => {
  const { samples } = buildSamples(
    observation({
      links: [
        link('persistent://bank/pay/a', 'beijing', { replicationDelayMs: 120.4, backlogEntries: 3, backlogBytesEstimate: 300 }),
        link('persistent://bank/pay/b-partition-1', 'beijing', { replicationDelayMs: 4500, backlogEntries: 7, backlogBytesEstimate: 700.6, state: 'backing-off' }),
        link('persistent://bank/pay/a', 'shenzhen', { replicationDelayMs: 3 }),
      ],
    }),
    EMPTY,
  );
  const beijing = find(samples, 'out', 'bank/pay', 'shanghai', 'beijing');
  t.like(beijing?.values, { lagMs: 4500, backlogEntries: 10, backlogBytes: 1001, links: 2, linkState: LinkStateValue.Down });
  t.like(find(samples, 'out', 'bank/pay', 'shanghai', 'shenzhen')?.values, { lagMs: 3, links: 1, linkState: LinkStateValue.Up });
  // A namespace that stays here has no pair; every namespace held has its ns sample; the node sample is always there.
  t.is(samples.filter((s) => s.series.kind === 'out' && s.series.namespace === 'bank/local').length, 0);
  t.like(find(samples, 'ns', 'bank/local', 'shanghai', '')?.values, { topics: 1, mayHold: 1 });
  t.truthy(find(samples, 'node', '', 'shanghai', ''));
});

test('sampler: a pair of the replication set with no link yet is recorded as having no links, not as up', (t) => {
  const { samples } = buildSamples(observation(), EMPTY);
  t.like(find(samples, 'out', 'bank/pay', 'shanghai', 'beijing')?.values, { lagMs: 0, links: 0, linkState: LinkStateValue.NoLinks });
});

test('sampler: counters become what they gained since the last sample; a counter that went down was restarted', (t) => {
  const first = buildSamples(observation({ links: [link('persistent://bank/pay/a', 'beijing', { duplicatesAtRemote: 5, residencyBlocked: 2, entriesShipped: 100 })] }), EMPTY);
  t.like(find(first.samples, 'out', 'bank/pay', 'shanghai', 'beijing')?.values, { duplicates: 5, residencyWithheld: 2, entriesShipped: 100 });
  const second = buildSamples(observation({ links: [link('persistent://bank/pay/a', 'beijing', { duplicatesAtRemote: 8, residencyBlocked: 2, entriesShipped: 150 })] }), first.counters);
  t.like(find(second.samples, 'out', 'bank/pay', 'shanghai', 'beijing')?.values, { duplicates: 3, residencyWithheld: 0, entriesShipped: 50 });
  // The link was rebuilt (placement change): its counters restarted from 0.
  const third = buildSamples(observation({ links: [link('persistent://bank/pay/a', 'beijing', { duplicatesAtRemote: 1, entriesShipped: 4 })] }), second.counters);
  t.like(find(third.samples, 'out', 'bank/pay', 'shanghai', 'beijing')?.values, { duplicates: 1, entriesShipped: 4 });
});

test('sampler: durable counters count from their saved value across restarts; the first one ever is only a baseline', (t) => {
  const withConflicts = (n: number): Observation => observation({ namespaces: [{ namespace: 'bank/pay', replicationSet: ['shanghai', 'beijing'], mayHold: true, topics: 1, conflictsRecorded: n, writesRefusedResidency: 0 }] });
  const first = buildSamples(withConflicts(40), EMPTY);
  t.is(find(first.samples, 'ns', 'bank/pay', 'shanghai', '')?.values.conflicts, 0);
  const second = buildSamples(withConflicts(43), first.counters);
  t.is(find(second.samples, 'ns', 'bank/pay', 'shanghai', '')?.values.conflicts, 3);
  // After a restart: volatile counters are gone, durable ones come back from the store.
  const restarted = buildSamples(withConflicts(45), { volatile: {}, durable: second.counters.durable });
  t.is(find(restarted.samples, 'ns', 'bank/pay', 'shanghai', '')?.values.conflicts, 2);
});

test('sampler: the inbound watermark is the lowest over the namespace\'s topics; the skew bound comes from the freshest', (t) => {
  const hlc = (ms: number, counter = 0): string => ((BigInt(ms) << 16n) | BigInt(counter)).toString();
  const { samples } = buildSamples(
    observation({
      watermarks: {
        'persistent://bank/pay/a': { beijing: hlc(NOW - 300), shanghai: hlc(NOW) },
        'persistent://bank/pay/b': { beijing: hlc(NOW + 2500, 7), shenzhen: hlc(NOW - 50) },
        'persistent://bank/other/c': { beijing: 'not a number' },
      },
    }),
    EMPTY,
  );
  const beijing = find(samples, 'in', 'bank/pay', 'beijing', 'shanghai');
  t.is(beijing?.hlc?.watermarkHlc, BigInt(hlc(NOW - 300)));
  t.is(beijing?.values.skewMs, 2500);
  t.is(find(samples, 'in', 'bank/pay', 'shenzhen', 'shanghai')?.values.skewMs, -50);
  // Our own origin is not an inbound pair; a malformed watermark vouches for nothing.
  t.falsy(find(samples, 'in', 'bank/pay', 'shanghai', 'shanghai'));
  t.falsy(find(samples, 'in', 'bank/other', 'beijing', 'shanghai'));
});

test('sampler: the node sample carries the receiver\'s refusals since the last sample and its largest refused skew', (t) => {
  const receiver = { residencyRefusals: 2, unauthorizedRefusals: 1, clockSkewRefusals: 4, maxClockSkewMs: 3100.2, entriesAppended: 10, duplicates: 1 };
  const first = buildSamples(observation({ receiver }), EMPTY);
  t.like(find(first.samples, 'node', '', 'shanghai', '')?.values, { residencyRefusals: 2, unauthorizedRefusals: 1, clockSkewRefusals: 4, maxClockSkewMs: 3100 });
  const second = buildSamples(observation({ receiver: { ...receiver, residencyRefusals: 5 } }), first.counters);
  t.like(find(second.samples, 'node', '', 'shanghai', '')?.values, { residencyRefusals: 3, clockSkewRefusals: 0 });
});
