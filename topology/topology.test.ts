import test from 'ava';
import fc from 'fast-check';
import { TopologyError, nextHops, nodeReplicationAddress, pathTo, regionServiceUrl, replicationEntryAddresses, validateTopology, type RegionSpec } from './index.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`topology property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

const regions = {
  shanghai: { grpc: '127.0.0.1:6650', admin: '127.0.0.1:8080', replication: '127.0.0.1:6660' },
  beijing: { grpc: '127.0.0.1:6651', admin: '127.0.0.1:8081', replication: '127.0.0.1:6661' },
  shenzhen: { grpc: '127.0.0.1:6652', admin: '127.0.0.1:8082', replication: '127.0.0.1:6662' },
};

test('topology: a full mesh by default; tenants and namespaces checked', (t) => {
  const topo = validateTopology({
    regions,
    transport: { kind: 'insecure' },
    tenants: { bank: { allowedRegions: ['shanghai', 'beijing'], homeRegion: 'shanghai' } },
    namespaces: { 'bank/pay': { replicationSet: ['shanghai', 'beijing'] } },
  });
  t.deepEqual(topo.links, [['beijing', 'shanghai'], ['beijing', 'shenzhen'], ['shanghai', 'shenzhen']]);
  t.is(topo.tenants.get('bank')?.homeRegion, 'shanghai');
  t.is(topo.maxClockOffsetMs, 500);
});

test('topology: errors name the field and the reason', (t) => {
  const cases: Array<[unknown, string, RegExp]> = [
    [{ regions: {} }, 'regions', /must map region names/],
    [{ regions: { Bad: regions.shanghai } }, 'regions.Bad', /lowercase/],
    [{ regions: { a: { ...regions.shanghai, grpc: 'nope' } }, transport: { kind: 'insecure' } }, 'regions.a.grpc', /host:port/],
    [{ regions, transport: { kind: 'tlcp' } }, 'transport.certDir', /required for tlcp/],
    [{ regions, transport: { kind: 'quic' } }, 'transport.kind', /tlcp, tls or insecure/],
    [{ regions, transport: { kind: 'insecure' }, links: [['shanghai', 'mars']] }, 'links[0][1]', /unknown region "mars"/],
    [{ regions, transport: { kind: 'insecure' }, tenants: { bank: { allowedRegions: ['shanghai'], homeRegion: 'beijing' } } }, 'tenants.bank.homeRegion', /one of the allowed regions/],
    [
      { regions, transport: { kind: 'insecure' }, tenants: { bank: { allowedRegions: ['shanghai'] } }, namespaces: { 'bank/pay': { replicationSet: ['shanghai', 'beijing'] } } },
      'namespaces.bank/pay.replicationSet',
      /"beijing" is outside tenant bank's allowed regions/,
    ],
    [
      {
        regions,
        transport: { kind: 'insecure' },
        links: [['shanghai', 'beijing'], ['beijing', 'shenzhen']],
        tenants: { bank: { allowedRegions: ['shanghai', 'shenzhen', 'beijing'] } },
        namespaces: { 'bank/pay': { replicationSet: ['shanghai', 'shenzhen'] } },
      },
      'namespaces.bank/pay.replicationSet',
      /cannot be reached through links that stay inside the replication set/,
    ],
    [{ regions, transport: { kind: 'insecure' }, colour: 'blue' }, 'colour', /unknown field/],
  ];
  for (const [doc, field, reason] of cases) {
    const error = t.throws(() => validateTopology(doc), { instanceOf: TopologyError });
    t.is(error?.field, field);
    t.regex(error?.message ?? '', reason);
  }
});

test('routing: hub and spoke sends spoke entries through the hub, once', (t) => {
  const links: Array<[string, string]> = [['hub', 'a'], ['hub', 'b'], ['hub', 'c']];
  const members = ['a', 'b', 'c', 'hub'];
  t.deepEqual(nextHops(links, members, 'a', 'a'), ['hub']);
  t.deepEqual(nextHops(links, members, 'a', 'hub'), ['b', 'c']);
  t.deepEqual(nextHops(links, members, 'a', 'b'), []);
  t.deepEqual(pathTo(links, members, 'a', 'c'), ['a', 'hub', 'c']);
});

test('routing: on any connected graph every member receives each origin’s entries exactly once', (t) => {
  const graph = fc.integer({ min: 2, max: 7 }).chain((n) =>
    fc.record({
      n: fc.constant(n),
      // A random spanning chain keeps the graph connected; extra edges add cycles.
      order: fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
      extra: fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: 10 }),
    }),
  );
  fc.assert(
    fc.property(graph, ({ n, order, extra }) => {
      const name = (i: number) => `r${i}`;
      const links: Array<[string, string]> = [];
      for (let i = 1; i < n; i++) links.push([name(order[i - 1] as number), name(order[i] as number)]);
      for (const [a, b] of extra) if (a !== b) links.push([name(a), name(b)]);
      const members = [...Array(n).keys()].map(name);
      for (const origin of members) {
        const received = new Map<string, number>([[origin, 1]]);
        const queue = [origin];
        for (let steps = 0; queue.length > 0 && steps < 1000; steps++) {
          const at = queue.shift() as string;
          for (const next of nextHops(links, members, origin, at)) {
            received.set(next, (received.get(next) ?? 0) + 1);
            queue.push(next);
          }
        }
        if (members.some((m) => received.get(m) !== 1)) return false;
      }
      return true;
    }),
    { seed, numRuns: 300 },
  );
  t.pass();
});

test('topology: a region may list its nodes (a regional cluster); the single-node form is unchanged', (t) => {
  const topo = validateTopology({
    regions: {
      shanghai: {
        nodes: {
          b1: { grpc: '127.0.0.1:7650', admin: '127.0.0.1:7080', replication: '127.0.0.1:7660' },
          b2: { grpc: '127.0.0.1:7651', admin: '127.0.0.1:7081', replication: '127.0.0.1:7661', dataDir: 'b2' },
        },
      },
      beijing: regions.beijing,
    },
    endpoints: { 'beijing->shanghai/b2': '127.0.0.1:9002', 'shanghai->beijing': '127.0.0.1:9003' },
    transport: { kind: 'insecure' },
  });
  const shanghai = topo.regions.get('shanghai');
  t.true(shanghai?.clustered);
  t.deepEqual(shanghai?.nodes.map((n) => n.id), ['b1', 'b2']);
  t.is(shanghai?.grpc, '127.0.0.1:7650');
  t.is(regionServiceUrl(shanghai as RegionSpec), 'ipv4:127.0.0.1:7650,127.0.0.1:7651');
  // Links into the cluster may start at any broker; a redirect goes to the named one, through its endpoint if set.
  t.deepEqual(replicationEntryAddresses(topo, 'beijing', 'shanghai'), ['127.0.0.1:7660', '127.0.0.1:9002']);
  t.is(nodeReplicationAddress(topo, 'beijing', 'shanghai', 'b1'), '127.0.0.1:7660');
  t.is(nodeReplicationAddress(topo, 'beijing', 'shanghai', 'b2'), '127.0.0.1:9002');
  t.is(nodeReplicationAddress(topo, 'beijing', 'shanghai', 'b3'), undefined);
  const beijing = topo.regions.get('beijing');
  t.false(beijing?.clustered);
  t.deepEqual(beijing?.nodes, [{ id: 'beijing', ...regions.beijing }]);
  t.is(regionServiceUrl(beijing as RegionSpec), regions.beijing.grpc);
  t.deepEqual(replicationEntryAddresses(topo, 'shanghai', 'beijing'), ['127.0.0.1:9003']);
  t.is(nodeReplicationAddress(topo, 'shanghai', 'beijing', 'beijing'), '127.0.0.1:9003');
});

test('topology: errors in a region\'s nodes name the field', (t) => {
  const node = { grpc: '127.0.0.1:7650', admin: '127.0.0.1:7080', replication: '127.0.0.1:7660' };
  const cases: Array<[unknown, string, RegExp]> = [
    [{ regions: { a: { nodes: {} } }, transport: { kind: 'insecure' } }, 'regions.a.nodes', /must map broker ids/],
    [{ regions: { a: { nodes: { b1: node }, grpc: '127.0.0.1:1' } }, transport: { kind: 'insecure' } }, 'regions.a.grpc', /endpoints per node/],
    [{ regions: { a: { nodes: { 'b 1': node } } }, transport: { kind: 'insecure' } }, 'regions.a.nodes.b 1', /node id/],
    [{ regions: { a: { nodes: { b1: { ...node, grpc: 'x' } } } }, transport: { kind: 'insecure' } }, 'regions.a.nodes.b1.grpc', /host:port/],
    [{ regions: { a: { nodes: { b1: { ...node, extra: 1 } } } }, transport: { kind: 'insecure' } }, 'regions.a.nodes.b1.extra', /unknown field/],
    [{ regions: { a: { nodes: { b1: node, b2: node } } }, transport: { kind: 'insecure' } }, 'regions.a.nodes.b2.grpc', /also regions.a.nodes.b1.grpc/],
    [{ regions: { a: { nodes: { b1: node } }, b: regions.beijing }, endpoints: { 'b->a/b9': '127.0.0.1:1' }, transport: { kind: 'insecure' } }, 'endpoints.b->a/b9', /no node "b9"/],
  ];
  for (const [doc, field, reason] of cases) {
    const error = t.throws(() => validateTopology(doc), { instanceOf: TopologyError });
    t.is((error as TopologyError).field, field);
    t.regex(error?.message ?? '', reason);
  }
});
