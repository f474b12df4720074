// The cluster layer against a real etcd: brokers are in-process BrokerCoordinators (or bare
// sessions and ownership managers), each with its own etcd client, so that one can be
// "killed" (its client closed without revoking: its lease expires in etcd) or cut off
// behind a TCP proxy. Every test has an etcd of its own. Waits are on events, bounded;
// nothing asserts a duration.
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { FaultProxy } from '../../multi-region-tests/fault-proxy.ts';
import { startEtcd, type EtcdProcess } from '../../test-support/etcd.ts';
import { waitFor } from '../../test-support/processes.ts';
import { EtcdMetadataStore, type MetadataStore } from '../metadata-store/index.ts';
import {
  BrokerCoordinator,
  ClusterError,
  LeaseSession,
  OwnershipManager,
  watchOwners,
  type BrokerCoordinatorOptions,
  type CoordinatorEvent,
} from './index.ts';

const LEASE_TTL_MS = 2000;
const WAIT_MS = 20_000;

/** Events of every broker of a test, numbered in the order they happened in this process. */
class EventLog<E> {
  readonly events: { seq: number; event: E }[] = [];
  #seq = 0;
  readonly #waiters = new Set<() => void>();

  /** The next number of the shared sequence (also for things that are not events). */
  next(): number {
    return ++this.#seq;
  }

  push(event: E): number {
    const seq = this.next();
    this.events.push({ seq, event });
    for (const waiter of [...this.#waiters]) waiter();
    return seq;
  }

  /** Resolves with the first event (already recorded or future) matching `match`; bounded. */
  waitFor(match: (event: E) => boolean, what: string, timeoutMs = WAIT_MS): Promise<{ seq: number; event: E }> {
    const found = this.events.find((e) => match(e.event));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = (): void => {
        const hit = this.events.find((e) => match(e.event));
        if (hit) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve(hit);
        }
      };
      this.#waiters.add(check);
    });
  }

  /** Resolves once `condition()` holds, checked after every event; bounded. */
  async until(condition: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    await this.waitFor(() => condition(), what, timeoutMs).catch((error: unknown) => {
      if (!condition()) throw error;
    });
  }
}

async function freshEtcd(t: ExecutionContext): Promise<EtcdProcess> {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  return etcd;
}

function openStore(t: ExecutionContext, endpoint: string): MetadataStore {
  const store = new EtcdMetadataStore([endpoint]);
  t.teardown(() => store.close());
  return store;
}

interface TestBroker {
  id: string;
  store: MetadataStore;
  coordinator: BrokerCoordinator;
  serving: Set<string>;
}

/** A broker with its own etcd client; its onBundleAssigned/Unassigned record what it serves. */
async function startBroker(t: ExecutionContext, endpoint: string, id: string, log: EventLog<CoordinatorEvent>, extra: Partial<BrokerCoordinatorOptions> = {}): Promise<TestBroker> {
  const store = openStore(t, endpoint);
  const serving = new Set<string>();
  const coordinator = await BrokerCoordinator.start({
    metadata: store,
    brokerId: id,
    grpcAddress: `${id}.grpc:6650`,
    adminUrl: `http://${id}.admin:8080`,
    leaseTtlMs: LEASE_TTL_MS,
    loadReportIntervalMs: 300,
    lookupTimeoutMs: WAIT_MS,
    balancer: { moveCooldownMs: 60_000 },
    onBundleAssigned: async (bundle) => {
      serving.add(bundle);
    },
    onBundleUnassigned: async (bundle) => {
      serving.delete(bundle);
    },
    onEvent: (event) => log.push(event),
    ...extra,
  });
  t.teardown(() => coordinator.close());
  return { id, store, coordinator, serving };
}

/** Closes the broker's etcd client without revoking anything: to etcd, the broker died. */
async function kill(broker: TestBroker): Promise<void> {
  await broker.store.close();
}

const topics = (n: number): string[] => Array.from({ length: n }, (_, i) => `acme/orders/topic-${i}`);

/**
 * Waits until the brokers agree (each topic's bundle owned by exactly one of them, the one it
 * is assigned to), then checks that lookup through every broker names that owner. Waiting
 * is needed: a lookup can answer from the owner key before the owner's own create call has
 * returned, and a bundle being handed over is briefly owned by nobody.
 */
async function checkSingleOwners(t: ExecutionContext, brokers: TestBroker[], names: string[]): Promise<void> {
  const agreed = (): boolean =>
    names.every((topic) => {
      const owners = brokers.filter((b) => b.coordinator.owns(topic));
      return owners.length === 1 && brokers.every((b) => b.coordinator.assignments().get(b.coordinator.bundleOf(topic)) === owners[0]!.id);
    });
  await waitFor(agreed, WAIT_MS, 'every bundle to have one owner, the assigned broker');
  for (const topic of names) {
    for (const broker of brokers) {
      const answer = await broker.coordinator.lookup(topic);
      t.deepEqual(brokers.filter((b) => b.coordinator.owns(topic)).map((b) => b.id), [answer.brokerId], `${topic}: one owner, the one lookup through ${broker.id} names`);
    }
  }
}

test.serial('ownership: 5 brokers acquire one bundle at once — exactly one owns it, the others see who', async (t) => {
  const etcd = await freshEtcd(t);
  const bundle = 'acme/orders/0x00000000_0x10000000';
  const managers = await Promise.all(
    Array.from({ length: 5 }, async (_, i) => {
      const store = openStore(t, etcd.endpoint);
      const session = await LeaseSession.open(store, { ttlMs: LEASE_TTL_MS });
      const owners = await watchOwners(store);
      t.teardown(async () => {
        await session.close({ revoke: true });
        await owners.close();
      });
      return new OwnershipManager(store, session, { brokerId: `b${i}`, grpcAddress: `b${i}:6650` }, owners);
    }),
  );
  const results = await Promise.all(managers.map((m) => m.acquire(bundle)));
  const winners = results.flatMap((r, i) => (r.acquired ? [i] : []));
  t.is(winners.length, 1);
  const winner = managers[winners[0]!]!;
  for (const [i, result] of results.entries()) {
    if (!result.acquired) t.is(result.owner?.owner.brokerId, winner.brokerId, `b${i} sees the winner`);
  }
  t.deepEqual(managers.map((m) => m.owns(bundle)), managers.map((m) => m === winner));
  const loser = managers.find((m) => m !== winner)!;
  const error = t.throws(() => loser.assertOwner(bundle), { instanceOf: ClusterError });
  t.is(error?.code, 'ADMQ_ERR_NOT_OWNER');
  t.notThrows(() => winner.assertOwner(bundle));
  // Acquiring again is idempotent for the owner; release lets the next one in.
  t.true((await winner.acquire(bundle)).acquired);
  await winner.release(bundle);
  t.false(winner.owns(bundle));
  t.true((await loser.acquire(bundle)).acquired);
});

test.serial('ownership: a lease revoked behind the broker\'s back ends its ownership (onLost), then another broker acquires', async (t) => {
  const etcd = await freshEtcd(t);
  const bundle = 'acme/orders/0x10000000_0x20000000';
  const log = new EventLog<string>();
  const open = async (id: string): Promise<OwnershipManager> => {
    const store = openStore(t, etcd.endpoint);
    const session = await LeaseSession.open(store, { ttlMs: LEASE_TTL_MS });
    const owners = await watchOwners(store);
    t.teardown(async () => {
      await session.close({ revoke: true });
      await owners.close();
    });
    const manager = new OwnershipManager(store, session, { brokerId: id, grpcAddress: `${id}:6650` }, owners);
    manager.onLost((lost, reason) => log.push(`${id} lost ${lost}: ${reason}`));
    session.onLost((reason) => log.push(`${id} session ended: ${reason}`));
    owners.onChange((key, entry) => {
      if (entry === undefined && key.endsWith(bundle) && id === 'b') {
        manager.acquire(bundle).then(
          (r) => r.acquired && log.push('b acquired'),
          () => {}, // after the test, the session is closed
        );
      }
    });
    return manager;
  };
  const a = await open('a');
  const b = await open('b');
  t.true((await a.acquire(bundle)).acquired);
  t.false((await b.acquire(bundle)).acquired);

  // An operator (or etcd itself) ends a's lease: a must notice and stop owning.
  const admin = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => admin.close());
  await admin.leaseClient.leaseRevoke({ ID: a.session.id });
  const lost = await log.waitFor((e) => e.startsWith('a lost'), 'a to lose the bundle');
  t.false(a.owns(bundle));
  const acquired = await log.waitFor((e) => e === 'b acquired', 'b to acquire');
  t.true(b.owns(bundle));
  t.true(lost.seq > 0 && acquired.seq > 0);
  // Its next renewal finds the lease gone: the session ends, and with it any new acquire.
  await log.waitFor((e) => e.startsWith('a session ended'), 'a\'s session to end');
  t.false(a.session.isValid());
  await t.throwsAsync(() => a.acquire(bundle), { instanceOf: ClusterError, message: /session/ });
});

test.serial('ownership: a broker cut off from etcd (blackholed proxy) stops owning strictly before another broker can acquire', async (t) => {
  const etcd = await freshEtcd(t);
  const [host, port] = etcd.endpoint.split(':') as [string, string];
  const proxy = await FaultProxy.start({ targetHost: host, targetPort: Number(port), name: 'a->etcd' });
  t.teardown(() => proxy.close());
  const bundle = 'acme/orders/0x20000000_0x30000000';
  const log = new EventLog<string>();

  const storeA = new EtcdMetadataStore([proxy.address]);
  const sessionA = await LeaseSession.open(storeA, { ttlMs: LEASE_TTL_MS });
  const ownersA = await watchOwners(storeA);
  const a = new OwnershipManager(storeA, sessionA, { brokerId: 'a', grpcAddress: 'a:6650' }, ownersA);
  a.onLost((lost, reason) => log.push(`a lost ${lost}: ${reason}`));
  t.teardown(async () => {
    // Heal first, so that closing the client does not wait on a partition.
    proxy.heal();
    await sessionA.close();
    await ownersA.close();
    await storeA.close();
  });

  const storeB = openStore(t, etcd.endpoint);
  const sessionB = await LeaseSession.open(storeB, { ttlMs: LEASE_TTL_MS });
  const ownersB = await watchOwners(storeB);
  t.teardown(async () => {
    await sessionB.close({ revoke: true });
    await ownersB.close();
  });
  const b = new OwnershipManager(storeB, sessionB, { brokerId: 'b', grpcAddress: 'b:6650' }, ownersB);
  let aOwnedWhenBAcquired: boolean | undefined;
  const tryB = async (): Promise<void> => {
    const result = await b.acquire(bundle);
    if (result.acquired) {
      // Read a's own belief at the very moment b's create succeeded.
      aOwnedWhenBAcquired = a.owns(bundle);
      log.push('b acquired');
    }
  };
  ownersB.onChange((key, entry) => {
    if (entry === undefined && key.endsWith(bundle)) tryB().catch(() => {});
  });

  t.true((await a.acquire(bundle)).acquired);
  t.true(a.owns(bundle));
  await tryB();
  t.false(b.owns(bundle), 'b cannot acquire while a holds the key');

  const cut = log.push('blackhole');
  proxy.blackhole('both');
  const acquired = await log.waitFor((e) => e === 'b acquired', 'b to acquire after a\'s lease expired in etcd');
  const lost = log.events.find((e) => e.event.startsWith('a lost'));
  t.truthy(lost, 'a reported the loss');
  t.true(cut < lost!.seq && lost!.seq < acquired.seq, `order: blackhole ${cut}, a lost ${lost?.seq}, b acquired ${acquired.seq}`);
  t.is(aOwnedWhenBAcquired, false, 'a did not believe it owned the bundle when b acquired it');
  t.false(a.owns(bundle));
  t.throws(() => a.assertOwner(bundle), { instanceOf: ClusterError, message: /session ended/ });
});

test.serial('coordinator: lookup from any broker names the single owner; a killed broker\'s bundles move to the live ones', async (t) => {
  const etcd = await freshEtcd(t);
  const log = new EventLog<CoordinatorEvent>();
  const brokers = [await startBroker(t, etcd.endpoint, 'b1', log), await startBroker(t, etcd.endpoint, 'b2', log), await startBroker(t, etcd.endpoint, 'b3', log)];
  const names = topics(24);
  // Lookups through different brokers place the bundles.
  const answers = await Promise.all(names.map((topic, i) => brokers[i % 3]!.coordinator.lookup(topic)));
  for (const [i, topic] of names.entries()) {
    const again = await brokers[(i + 1) % 3]!.coordinator.lookup(topic);
    t.is(again.brokerId, answers[i]!.brokerId, `${topic}: every broker gives the same answer`);
    t.is(again.grpcAddress, `${again.brokerId}.grpc:6650`);
  }
  await checkSingleOwners(t, brokers, names);
  const notOwner = brokers.find((b) => !b.coordinator.owns(names[0]!))!;
  t.is(t.throws(() => notOwner.coordinator.assertOwner(names[0]!), { instanceOf: ClusterError })?.code, 'ADMQ_ERR_NOT_OWNER');

  const victim = brokers.find((b) => b.serving.size > 0 && !b.coordinator.isLoadManagerLeader())!;
  const orphaned = [...victim.serving];
  t.true(orphaned.length > 0);
  const killedAt = log.next();
  await kill(victim);
  const survivors = brokers.filter((b) => b !== victim);
  await log.until(
    () => orphaned.every((bundle) => survivors.some((b) => b.serving.has(bundle))),
    `bundles ${orphaned.join(', ')} to be served by a survivor`,
  );
  const owned = log.events.filter((e) => e.seq > killedAt && e.event.type === 'bundle-owned');
  t.true(orphaned.every((bundle) => owned.some((e) => e.event.type === 'bundle-owned' && e.event.bundle === bundle && e.event.brokerId !== victim.id)));
  await checkSingleOwners(t, survivors, names);
});

test.serial('coordinator: a broker that joins gets some bundles moved to it, each handed over by its old owner', async (t) => {
  const etcd = await freshEtcd(t);
  const log = new EventLog<CoordinatorEvent>();
  const brokers = [await startBroker(t, etcd.endpoint, 'b1', log), await startBroker(t, etcd.endpoint, 'b2', log)];
  const names = topics(40);
  await Promise.all(names.map((topic) => brokers[0]!.coordinator.lookup(topic)));
  const bundleCount = new Set(names.map((n) => brokers[0]!.coordinator.bundleOf(n))).size;
  const joinedAt = log.next();
  const newcomer = await startBroker(t, etcd.endpoint, 'b3', log);
  brokers.push(newcomer);
  await log.until(() => newcomer.serving.size >= Math.floor(bundleCount / 3) - 1 && newcomer.serving.size > 0, 'the newcomer to serve its share');
  const moved = [...newcomer.serving];
  // Each moved bundle was released by its old owner before the newcomer owned it.
  for (const bundle of moved) {
    const released = log.events.find((e) => e.seq > joinedAt && e.event.type === 'bundle-released' && e.event.bundle === bundle);
    const owned = log.events.find((e) => e.seq > joinedAt && e.event.type === 'bundle-owned' && e.event.bundle === bundle && e.event.brokerId === 'b3');
    t.truthy(released && owned && released.seq < owned.seq, `${bundle}: released, then owned by b3`);
  }
  t.true(log.events.some((e) => e.seq > joinedAt && e.event.type === 'moves' && e.event.moves.some((m) => m.to === 'b3' && m.reason === 'bundle-count')));
  // Once the moves settle, every bundle has one owner and lookups agree.
  await checkSingleOwners(t, brokers, names);
});

test.serial('load manager: when the leader dies another broker takes over, reassigns its bundles and places new ones', async (t) => {
  const etcd = await freshEtcd(t);
  const log = new EventLog<CoordinatorEvent>();
  const brokers = [await startBroker(t, etcd.endpoint, 'b1', log), await startBroker(t, etcd.endpoint, 'b2', log), await startBroker(t, etcd.endpoint, 'b3', log)];
  await log.until(() => brokers.filter((b) => b.coordinator.isLoadManagerLeader()).length === 1, 'a leader');
  t.is(brokers.filter((b) => b.coordinator.isLoadManagerLeader()).length, 1, 'one leader');
  const names = topics(12);
  await Promise.all(names.map((topic) => brokers[1]!.coordinator.lookup(topic)));
  const leader = brokers.find((b) => b.coordinator.isLoadManagerLeader())!;
  const orphaned = [...leader.serving];
  const killedAt = log.next();
  await kill(leader);
  const survivors = brokers.filter((b) => b !== leader);
  const elected = await log.waitFor((e) => e.type === 'leader' && e.leader && e.brokerId !== leader.id, 'a new leader');
  t.true(elected.seq > killedAt);
  await log.until(() => orphaned.every((bundle) => survivors.some((b) => b.serving.has(bundle))), 'the old leader\'s bundles to move');
  // A bundle nobody asked for before needs the new leader to place it.
  const fresh = topics(64).slice(12).find((topic) => !names.some((n) => survivors[0]!.coordinator.bundleOf(n) === survivors[0]!.coordinator.bundleOf(topic)))!;
  const answer = await survivors[0]!.coordinator.lookup(fresh);
  t.true(survivors.some((b) => b.id === answer.brokerId));
  await checkSingleOwners(t, survivors, [...names, fresh]);
});
