// Randomized fault schedules on three TLCP-linked regions: a seeded sequence of partitions
// (both ways and one way), loss bursts, delays and kill -9 while producers write in every
// region; then everything heals and the history must satisfy DESIGN §10 invariants 1–5.
// The seed is printed; ADMQ_SEED=<seed> replays the same schedule.
import test from 'ava';
import { waitFor } from '../test-support/processes.ts';
import { prng, seedFromEnv } from '../test-support/random.ts';
import { Cluster } from './cluster.ts';
import { History, checkHistory, formatViolations } from './history.ts';
import { recordStoredEverywhere, runProducers } from './workload.ts';

const REGIONS = ['shanghai', 'beijing', 'shenzhen'];
const STEPS = 6;

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

type Step =
  | { kind: 'partition'; region: string }
  | { kind: 'one-way'; link: string; direction: 'forward' | 'backward' }
  | { kind: 'loss'; link: string; probability: number }
  | { kind: 'delay'; oneWayMs: number }
  | { kind: 'kill'; region: string };

function planSteps(random: () => number, links: string[]): Array<{ step: Step; holdMs: number }> {
  const plan: Array<{ step: Step; holdMs: number }> = [];
  for (let i = 0; i < STEPS; i++) {
    const roll = random();
    let step: Step;
    if (roll < 0.25) step = { kind: 'partition', region: pick(random, REGIONS) };
    else if (roll < 0.45) step = { kind: 'one-way', link: pick(random, links), direction: random() < 0.5 ? 'forward' : 'backward' };
    else if (roll < 0.6) step = { kind: 'loss', link: pick(random, links), probability: 0.02 + random() * 0.08 };
    else if (roll < 0.8) step = { kind: 'delay', oneWayMs: Math.floor(random() * 40) };
    else step = { kind: 'kill', region: pick(random, REGIONS) };
    plan.push({ step, holdMs: 400 + Math.floor(random() * 1200) });
  }
  return plan;
}

test.serial('replication under a random fault schedule (seeded): every acked entry everywhere exactly once, per-origin order kept', async (t) => {
  const seed = seedFromEnv();
  console.log(`random fault schedule: seed ${seed} (replay with ADMQ_SEED=${seed})`);
  t.log(`seed ${seed} (replay with ADMQ_SEED=${seed})`);
  const random = prng(seed);
  const cluster = await Cluster.start({ regions: REGIONS });
  t.teardown(() => cluster.stop());
  const topic = 'persistent://public/default/random-faults';
  await cluster.createTopic('shanghai', topic);
  const plan = planSteps(random, [...cluster.proxies.keys()]);
  t.log(plan.map((p) => `${JSON.stringify(p.step)} for ${p.holdMs} ms`).join('\n'));

  const history = new History();
  const work = runProducers(cluster, history, { topic, regions: REGIONS, messagesMax: 4000, durationMs: 60_000, ratePerRegion: 400 });
  await waitFor(() => work.acked() >= 100, 30_000, 'first acks');
  for (const { step, holdMs } of plan) {
    switch (step.kind) {
      case 'partition':
        cluster.partition(step.region);
        break;
      case 'one-way':
        cluster.proxies.get(step.link)?.blackhole(step.direction);
        break;
      case 'loss':
        cluster.proxies.get(step.link)?.setLoss(step.probability);
        break;
      case 'delay':
        cluster.setDelay(step.oneWayMs);
        break;
      case 'kill':
        await cluster.kill(step.region);
        break;
    }
    await new Promise((resolve) => setTimeout(resolve, holdMs));
    if (step.kind === 'kill') await cluster.startRegion(step.region);
    else if (step.kind !== 'delay') cluster.heal();
  }
  cluster.heal();
  cluster.setDelay(0);
  await work.stop();
  await cluster.waitConverged(topic, 90_000);
  await recordStoredEverywhere(cluster, history, topic);
  const violations = checkHistory(history, { regions: REGIONS });
  t.deepEqual(violations, [], `seed ${seed}\n${formatViolations(violations)}`);
  t.true(history.produces().some((p) => p.acked), 'the workload made progress');
});
