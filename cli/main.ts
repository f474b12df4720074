// The `admq` command. Each subcommand has its own --help; `admq --help` lists them all.
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { AdminClient, AdmqClient, AdmqClientError, type SubscriptionType } from '../client/index.ts';
import { AdmqError, start } from '../region-node/index.ts';
import { CONNECTION_OPTIONS, GLOBAL_HELP, UsageError, adminUrl, int, list, parse, printJson, serviceUrl, str, v8FlagGiven } from './args.ts';
import { runConsumeLoad, runProduceLoad } from './perf.ts';
import { plannedFailover } from '../operations/planned-failover.ts';
import { cmdDrill } from '../drill/cli.ts';
import { cmdReport } from '../compliance/cli.ts';
import { sm4Acceleration } from '../tls/index.ts';

/** Old-generation growth between full collections, in percent of the live size (see cmdStart). */
const HEAP_GROWING_PERCENT = 200;

const MAIN_HELP = `admq — geo-distributed, active-active message queue

Usage: admq <command> [options]

Commands:
  dev            run a local three-region deployment (shanghai, beijing, shenzhen) with TLCP links
  start          run a region node (standalone, one region of a topology, or a broker of a
                 regional cluster with --metadata-store)
  storage-node   run a storage node of a regional cluster (ledger entries, quorum-replicated)
  replication    replication status: per topic and region pair, backlog, delay, watermarks
  cluster        a regional cluster's brokers, bundles, storage nodes; which broker serves a topic
  failover       planned failover: move a tenant's home region with no loss (fence, drain, move)
  drill          rehearse a fault (region outage, link partition, clock skew, planned failover)
                 with canary clients; reports RPO, RTO, duplicates, order, catch-up, residency
  report         replication-lag compliance report (JSON, CSV, HTML) for a period, signed
                 with the region's SM2 certificate; 'report verify FILE' checks one
  tenants        list, get, create and delete tenants; placement, fences
  namespaces     list, create and delete namespaces; replication sets
  topics         list, create, delete and inspect topics and their subscriptions
  produce        send messages from arguments, a file or stdin
  consume        receive messages with a named subscription
  perf           load generators: perf produce, perf consume
  certs          SM2 certificate tooling (CA, region and node sign/enc certificates)
  tls            TLCP (GMTLS) diagnostic client and server, like openssl s_client/s_server

Run 'admq <command> --help' for a command's options.

${GLOBAL_HELP}`;

const START_HELP = `Usage: admq start [options]

Runs a standalone region node until SIGINT or SIGTERM, then shuts down cleanly.

Options:
  --config FILE            JSON file of settings (fields as below, camelCase); flags override it
  --topology FILE          run as one region of this topology (YAML or JSON); its endpoints,
                           data directory, tenants and namespaces come from the file
  --region NAME            region name, lowercase (default standalone)
  --data-dir DIR           LMDB data directory (default ./data/<region>)
  --grpc-host HOST         gRPC listen host (default 127.0.0.1)
  --grpc-port PORT         gRPC listen port, 0 = any free (default 6650)
  --admin-host HOST        admin API listen host (default 127.0.0.1)
  --admin-port PORT        admin API listen port, 0 = any free (default 8080)
  --durability MODE        fsync (default) or none — none may lose acknowledged messages on a crash
  --message-bytes-max N    largest message in bytes (default 5242880)

Regional cluster (several brokers and storage nodes sharing one etcd; see ARCHITECTURE.md):
  --metadata-store URL     etcd://host:port[,host:port…]: run as one broker of the cluster
  --broker-id ID           this broker's id in the region (default broker-<grpc port>)
  --advertised-address A   host:port clients are sent to for this broker's topics
  --ownership-lease-ms N   ownership lease TTL; a dead broker's topics move after about this (default 5000)
  --quorum E/QW/QA         storage nodes per ledger / copies per entry / fsynced copies per ack (default 3/3/2)

Environment:
  ADMQ_CLOCK_SKEW_MS       shift this node's physical clock by N ms (clock-skew drills and tests)
  ADMQ_METRICS=off         no OpenTelemetry metrics (GET /metrics on the admin port otherwise;
                           see observability/README.md)
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
                           also push metrics by OTLP/HTTP to this URL every 10 s`;

/** `--quorum E/QW/QA` as config fields. */
function quorum(value: string | undefined): { ensembleSize?: number; writeQuorum?: number; ackQuorum?: number } {
  if (!value) return {};
  const match = /^(\d+)\/(\d+)\/(\d+)$/.exec(value);
  if (!match) throw new UsageError(`--quorum must be E/QW/QA, e.g. 3/3/2; got "${value}"`);
  return { ensembleSize: Number(match[1]), writeQuorum: Number(match[2]), ackQuorum: Number(match[3]) };
}

async function cmdStart(argv: string[]): Promise<number> {
  const parsed = parse(
    argv,
    {
      config: { type: 'string' },
      topology: { type: 'string' },
      region: { type: 'string' },
      'data-dir': { type: 'string' },
      'grpc-host': { type: 'string' },
      'grpc-port': { type: 'string' },
      'admin-host': { type: 'string' },
      'admin-port': { type: 'string' },
      durability: { type: 'string' },
      'message-bytes-max': { type: 'string' },
      'metadata-store': { type: 'string' },
      'broker-id': { type: 'string' },
      'advertised-address': { type: 'string' },
      'ownership-lease-ms': { type: 'string' },
      quorum: { type: 'string' },
    },
    START_HELP,
  );
  if (parsed === 'help') return help(START_HELP);
  const v = parsed.values;
  const file = str(v, 'config');
  const fromFile = file ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  const config = {
    ...fromFile,
    ...(str(v, 'region') && { region: str(v, 'region') }),
    ...(str(v, 'topology') && { topology: str(v, 'topology') }),
    ...(str(v, 'data-dir') && { dataDir: str(v, 'data-dir') }),
    ...(str(v, 'grpc-host') && { grpcHost: str(v, 'grpc-host') }),
    ...(v['grpc-port'] !== undefined && { grpcPort: int(v, 'grpc-port', 6650) }),
    ...(str(v, 'admin-host') && { adminHost: str(v, 'admin-host') }),
    ...(v['admin-port'] !== undefined && { adminPort: int(v, 'admin-port', 8080) }),
    ...(str(v, 'durability') && { durability: str(v, 'durability') as 'fsync' | 'none' }),
    ...(v['message-bytes-max'] !== undefined && { messageBytesMax: int(v, 'message-bytes-max', 0, 1) }),
    ...(str(v, 'metadata-store') && { metadataStore: str(v, 'metadata-store') }),
    ...(str(v, 'broker-id') && { brokerId: str(v, 'broker-id') }),
    ...(str(v, 'advertised-address') && { advertisedAddress: str(v, 'advertised-address') }),
    ...(v['ownership-lease-ms'] !== undefined && { ownershipLeaseMs: int(v, 'ownership-lease-ms', 5000, 1000) }),
    ...quorum(str(v, 'quorum')),
  };
  // ADMQ_CLOCK_SKEW_MS shifts this node's physical clock: for clock-skew drills and tests.
  const skewMs = Number(process.env.ADMQ_CLOCK_SKEW_MS ?? 0);
  if (!Number.isFinite(skewMs)) throw new UsageError(`ADMQ_CLOCK_SKEW_MS must be a number of ms; got "${process.env.ADMQ_CLOCK_SKEW_MS}"`);
  // V8 drops the bytecode of functions that have not run for a while and compiles them again
  // on their next call. A region node has code that sleeps through a partition and must run
  // flat out at the heal (a link's read and encode path); the price is that bytecode of
  // functions that never run again stays in the heap. Process-wide, so it is set here,
  // where the node's process starts.
  v8.setFlagsFromString('--no-flush-bytecode');
  // V8 counts the external memory allocated since its last full collection (the buffers of
  // socket reads, gRPC messages and TLCP records) against the old generation's headroom,
  // and starts marking once that headroom is smaller than the young generation. A region
  // node's heap is small (about 45 MB live), and V8's own growth factor left it some 30 MB
  // of headroom, which a link's buffers filled in a quarter of a second: full collections
  // back to back, up to half again as much CPU in a catch-up and their pauses in the tail of
  // the replication delay (bench/results/replication.md). Growing the old generation to
  // three times its live size between full collections keeps them seconds apart. A
  // `node --heap-growing-percent=…` (or `--heap_growing_percent`) of the operator's own wins.
  if (!v8FlagGiven(process.execArgv, '--heap-growing-percent')) v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  const node = await start(config, skewMs !== 0 ? { readPhysicalMs: () => Date.now() + skewMs } : {});
  if (skewMs !== 0) console.log(`  clock skewed by ${skewMs} ms (ADMQ_CLOCK_SKEW_MS)`);
  console.log(`admq region node "${node.config.region}" is running`);
  console.log(`  gRPC API   ${node.grpcAddress}`);
  console.log(`  admin API  ${node.adminUrl}/admin/v1`);
  if (node.replicationAddress) {
    console.log(`  replication ${node.replicationAddress} (topology ${node.config.topology})`);
    console.log(`  SM4 records ${sm4Acceleration.loaded ? 'native (GFNI, PCLMULQDQ)' : `OpenSSL SM4, JavaScript GHASH: ${sm4Acceleration.reason}`}`);
  }
  console.log(`  data       ${node.config.dataDir} (durability: ${node.config.durability})`);
  console.log('Press Ctrl-C to stop.');
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      console.log(`${signal}: shutting down…`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await node.close();
  console.log('stopped cleanly');
  return 0;
}

const TENANTS_HELP = `Usage: admq tenants <action> ...

  list                       list tenants
  get TENANT                 show a tenant
  create TENANT [--allowed-regions a,b] [--home-region a]
                             create a tenant; --allowed-regions limits where its data may live
                             (default: this node's region). In a topology the tenant's placement
                             replicates, so it exists in every region it allows
  delete TENANT              delete a tenant that has no namespaces
  set-placement TENANT [--allowed-regions a,b] [--home-region a]
                             change where a tenant may live and its home region (topology only;
                             replicated to every region, last writer wins by HLC). Refused with
                             ADMQ_ERR_RESIDENCY when a namespace of the tenant replicates to a
                             region that would no longer be allowed, or the home is not allowed
  fence TENANT               refuse the tenant's writes in its home region (what failover does
                             first); prints the HLC below which every accepted write lies
  unfence TENANT             lift the fence
  regions TENANT             the tenant's regions, home first, with their endpoints

${GLOBAL_HELP}`;

async function cmdTenants(argv: string[]): Promise<number> {
  const parsed = parse(argv, { ...CONNECTION_OPTIONS, 'allowed-regions': { type: 'string' }, 'home-region': { type: 'string' } }, TENANTS_HELP);
  if (parsed === 'help') return help(TENANTS_HELP);
  const admin = new AdminClient(adminUrl(parsed.values));
  const [action, tenant] = parsed.positionals;
  switch (action) {
    case 'list':
      for (const t of await admin.listTenants()) console.log(t);
      return 0;
    case 'get':
      printJson(await admin.call('GET', `/tenants/${encodeURIComponent(need(tenant, 'TENANT', TENANTS_HELP))}`));
      return 0;
    case 'create': {
      const regions = str(parsed.values, 'allowed-regions');
      const home = str(parsed.values, 'home-region');
      printJson(await admin.call('PUT', `/tenants/${encodeURIComponent(need(tenant, 'TENANT', TENANTS_HELP))}`, { ...(regions && { allowedRegions: regions.split(',') }), ...(home && { homeRegion: home }) }));
      return 0;
    }
    case 'set-placement': {
      const regions = str(parsed.values, 'allowed-regions');
      const home = str(parsed.values, 'home-region');
      if (!regions && !home) throw new UsageError(`set-placement needs --allowed-regions, --home-region or both\n\n${TENANTS_HELP}`);
      printJson(await admin.setTenantPlacement(need(tenant, 'TENANT', TENANTS_HELP), { ...(regions && { allowedRegions: regions.split(',') }), ...(home && { homeRegion: home }) }));
      return 0;
    }
    case 'fence':
      printJson(await admin.fenceTenant(need(tenant, 'TENANT', TENANTS_HELP)));
      return 0;
    case 'unfence':
      printJson(await admin.unfenceTenant(need(tenant, 'TENANT', TENANTS_HELP)));
      return 0;
    case 'regions':
      printJson(await admin.call('GET', `/tenants/${encodeURIComponent(need(tenant, 'TENANT', TENANTS_HELP))}/regions`));
      return 0;
    case 'delete':
      await admin.deleteTenant(need(tenant, 'TENANT', TENANTS_HELP));
      console.log(`deleted tenant ${tenant}`);
      return 0;
    default:
      throw new UsageError(TENANTS_HELP);
  }
}

const NAMESPACES_HELP = `Usage: admq namespaces <action> ...

  list TENANT                list a tenant's namespaces
  create TENANT/NAMESPACE [--replication-set a,b]
                             create a namespace; with --replication-set (topology only) its
                             placement replicates and creates it in those regions
  set-replication TENANT/NAMESPACE --replication-set a,b
                             change the regions a namespace replicates to (topology only).
                             Refused with ADMQ_ERR_RESIDENCY outside the tenant's allowed regions,
                             or when the set is not connected by links inside it. A region
                             removed from the set stops receiving and refuses new writes to the
                             namespace; the data it holds stays there (read-only, never deleted
                             silently) until deleted with 'admq topics delete' in that region
  delete TENANT/NAMESPACE    delete a namespace that has no topics
  placement                  every tenant's and namespace's current placement (JSON)

${GLOBAL_HELP}`;

async function cmdNamespaces(argv: string[]): Promise<number> {
  const parsed = parse(argv, { ...CONNECTION_OPTIONS, 'replication-set': { type: 'string' } }, NAMESPACES_HELP);
  if (parsed === 'help') return help(NAMESPACES_HELP);
  const admin = new AdminClient(adminUrl(parsed.values));
  const [action, name] = parsed.positionals;
  const replicationSet = str(parsed.values, 'replication-set')?.split(',');
  switch (action) {
    case 'placement':
      printJson(await admin.placement());
      return 0;
    case 'set-replication':
      if (!replicationSet) throw new UsageError(`set-replication needs --replication-set\n\n${NAMESPACES_HELP}`);
      printJson(await admin.setNamespacePlacement(need(name, 'TENANT/NAMESPACE', NAMESPACES_HELP), replicationSet));
      return 0;
    case 'list':
      for (const n of await admin.listNamespaces(need(name, 'TENANT', NAMESPACES_HELP))) console.log(n);
      return 0;
    case 'create': {
      const ns = need(name, 'TENANT/NAMESPACE', NAMESPACES_HELP);
      printJson(replicationSet ? await admin.call('PUT', `/namespaces/${ns.split('/').map(encodeURIComponent).join('/')}`, { replicationSet }) : await admin.createNamespace(ns));
      return 0;
    }
    case 'delete':
      await admin.deleteNamespace(need(name, 'TENANT/NAMESPACE', NAMESPACES_HELP));
      console.log(`deleted namespace ${name}`);
      return 0;
    default:
      throw new UsageError(NAMESPACES_HELP);
  }
}

const TOPICS_HELP = `Usage: admq topics <action> ...

  list TENANT/NAMESPACE                 list topics (partitioned topics once, with their partition count)
  create TOPIC [--partitions N] [--keyed]
                                        create a topic; N > 0 makes a partitioned topic (default 0);
                                        --keyed: messages are versions of their key, and concurrent
                                        writes in different regions resolve by the namespace's
                                        conflict policy (conflicts go to TENANT/NAMESPACE/__conflicts)
  table TOPIC                           a keyed topic's resolved value per key (JSON)
  delete TOPIC [--force]                delete a topic and its data; --force even with connected clients
  stats TOPIC                           backlog, rates, producers and subscriptions (JSON)
  subscriptions TOPIC                   list subscriptions
  create-subscription TOPIC SUB [--position earliest|latest]
                                        create a subscription without a consumer (default latest)
  delete-subscription TOPIC SUB [--force]

TOPIC is persistent://tenant/namespace/topic or tenant/namespace/topic.

${GLOBAL_HELP}`;

async function cmdTopics(argv: string[]): Promise<number> {
  const parsed = parse(
    argv,
    { ...CONNECTION_OPTIONS, partitions: { type: 'string' }, force: { type: 'boolean' }, position: { type: 'string' }, keyed: { type: 'boolean' } },
    TOPICS_HELP,
  );
  if (parsed === 'help') return help(TOPICS_HELP);
  const admin = new AdminClient(adminUrl(parsed.values));
  const [action, name, sub] = parsed.positionals;
  const force = parsed.values.force === true;
  switch (action) {
    case 'list':
      for (const t of await admin.listTopics(need(name, 'TENANT/NAMESPACE', TOPICS_HELP))) {
        console.log(t.partitions > 0 ? `${t.name} (${t.partitions} partitions)` : t.name);
      }
      return 0;
    case 'create':
      printJson(await admin.createTopic(need(name, 'TOPIC', TOPICS_HELP), int(parsed.values, 'partitions', 0), { keyed: parsed.values.keyed === true }));
      return 0;
    case 'table':
      printJson(await admin.topicTable(need(name, 'TOPIC', TOPICS_HELP)));
      return 0;
    case 'delete':
      await admin.deleteTopic(need(name, 'TOPIC', TOPICS_HELP), force);
      console.log(`deleted topic ${name}`);
      return 0;
    case 'stats':
      printJson(await admin.topicStats(need(name, 'TOPIC', TOPICS_HELP)));
      return 0;
    case 'subscriptions':
      for (const s of await admin.listSubscriptions(need(name, 'TOPIC', TOPICS_HELP))) console.log(s);
      return 0;
    case 'create-subscription': {
      const position = str(parsed.values, 'position') ?? 'latest';
      if (position !== 'earliest' && position !== 'latest') throw new UsageError('--position must be earliest or latest');
      printJson(await admin.createSubscription(need(name, 'TOPIC', TOPICS_HELP), need(sub, 'SUB', TOPICS_HELP), position));
      return 0;
    }
    case 'delete-subscription':
      await admin.deleteSubscription(need(name, 'TOPIC', TOPICS_HELP), need(sub, 'SUB', TOPICS_HELP), force);
      console.log(`deleted subscription ${sub}`);
      return 0;
    default:
      throw new UsageError(TOPICS_HELP);
  }
}

const PRODUCE_HELP = `Usage: admq produce TOPIC [options]

Sends messages and prints each one's id once it is durably stored.

Options:
  -m, --message TEXT       a message to send (repeatable)
  -f, --file FILE          send the file's contents (with --lines: one message per line)
      --stdin              read from standard input (with --lines: one message per line);
                           the default when neither -m nor -f is given
      --lines              split --file or --stdin input into one message per line
  -k, --key KEY            message key (routes partitions; orders key_shared delivery)
  -p, --property K=V       message property (repeatable)
      --producer-name NAME name for deduplication (default: chosen by the node)

${GLOBAL_HELP}`;

async function cmdProduce(argv: string[]): Promise<number> {
  const parsed = parse(
    argv,
    {
      ...CONNECTION_OPTIONS,
      message: { type: 'string', short: 'm', multiple: true },
      file: { type: 'string', short: 'f' },
      stdin: { type: 'boolean' },
      lines: { type: 'boolean' },
      key: { type: 'string', short: 'k' },
      property: { type: 'string', short: 'p', multiple: true },
      'producer-name': { type: 'string' },
    },
    PRODUCE_HELP,
  );
  if (parsed === 'help') return help(PRODUCE_HELP);
  const topic = need(parsed.positionals[0], 'TOPIC', PRODUCE_HELP);
  const properties: Record<string, string> = {};
  for (const p of list(parsed.values, 'property')) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--property must be KEY=VALUE; got "${p}"`);
    properties[p.slice(0, eq)] = p.slice(eq + 1);
  }
  const payloads: Buffer[] = list(parsed.values, 'message').map((m) => Buffer.from(m));
  const file = str(parsed.values, 'file');
  const splitLines = parsed.values.lines === true;
  const addInput = (data: Buffer): void => {
    if (!splitLines) payloads.push(data);
    else for (const line of data.toString('utf8').split('\n')) if (line.length > 0) payloads.push(Buffer.from(line));
  };
  if (file) addInput(readFileSync(file));
  if (parsed.values.stdin === true || (payloads.length === 0 && !file)) addInput(await readStdin());
  if (payloads.length === 0) throw new UsageError('nothing to send');
  const client = new AdmqClient({ serviceUrl: serviceUrl(parsed.values) });
  try {
    const producer = await client.createProducer({ topic, producerName: str(parsed.values, 'producer-name') });
    const key = str(parsed.values, 'key');
    const ids = await Promise.all(payloads.map((payload) => producer.send({ payload, key, properties })));
    for (const id of ids) console.log(`${id.topic} offset=${id.offset} seq=${id.sequenceId}${id.duplicate ? ' (duplicate)' : ''}`);
    console.error(`${ids.length} message(s) stored`);
    return 0;
  } finally {
    await client.close();
  }
}

function readStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.on('error', reject);
  });
}

const CONSUME_HELP = `Usage: admq consume TOPIC -s SUBSCRIPTION [options]

Receives messages and prints them, one per line: offset, key, properties, payload.

Options:
  -s, --subscription NAME     subscription name (required)
  -t, --type TYPE             exclusive (default), shared, failover or key_shared
  -n, --count N               stop after N messages; 0 = until Ctrl-C (default 0)
      --initial-position POS  earliest or latest (default latest) for a new subscription
      --timeout-ms MS         stop when no message arrives for this long (default: wait forever)
      --no-ack                do not acknowledge (messages will be redelivered)
      --json                  print each message as a JSON object
      --hex                   print payloads as hex instead of UTF-8

${GLOBAL_HELP}`;

async function cmdConsume(argv: string[]): Promise<number> {
  const parsed = parse(
    argv,
    {
      ...CONNECTION_OPTIONS,
      subscription: { type: 'string', short: 's' },
      type: { type: 'string', short: 't' },
      count: { type: 'string', short: 'n' },
      'initial-position': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'no-ack': { type: 'boolean' },
      json: { type: 'boolean' },
      hex: { type: 'boolean' },
    },
    CONSUME_HELP,
  );
  if (parsed === 'help') return help(CONSUME_HELP);
  const topic = need(parsed.positionals[0], 'TOPIC', CONSUME_HELP);
  const subscription = str(parsed.values, 'subscription');
  if (!subscription) throw new UsageError(`--subscription is required\n\n${CONSUME_HELP}`);
  const type = (str(parsed.values, 'type') ?? 'exclusive') as SubscriptionType;
  if (!['exclusive', 'shared', 'failover', 'key_shared'].includes(type)) throw new UsageError('--type must be exclusive, shared, failover or key_shared');
  const position = str(parsed.values, 'initial-position') ?? 'latest';
  if (position !== 'earliest' && position !== 'latest') throw new UsageError('--initial-position must be earliest or latest');
  const count = int(parsed.values, 'count', 0);
  const timeoutMs = parsed.values['timeout-ms'] === undefined ? undefined : int(parsed.values, 'timeout-ms', 0, 1);
  const client = new AdmqClient({ serviceUrl: serviceUrl(parsed.values) });
  let stop = false;
  process.once('SIGINT', () => {
    stop = true;
    void client.close();
  });
  try {
    const consumer = await client.subscribe({ topic, subscription, subscriptionType: type, initialPosition: position });
    let received = 0;
    while (!stop && (count === 0 || received < count)) {
      let m;
      try {
        m = await consumer.receive(timeoutMs);
      } catch (error) {
        if (error instanceof AdmqClientError && (error.code === 'ADMQ_ERR_TIMEOUT' || error.code === 'ADMQ_ERR_CLOSED')) break;
        throw error;
      }
      received++;
      const payload = parsed.values.hex === true ? m.payload.toString('hex') : m.payload.toString('utf8');
      if (parsed.values.json === true) {
        console.log(JSON.stringify({ ...m, hlc: m.hlc.toString(), payload }));
      } else {
        const props = Object.keys(m.properties).length > 0 ? ` ${JSON.stringify(m.properties)}` : '';
        console.log(`offset=${m.offset}${m.key !== undefined ? ` key=${m.key}` : ''}${props} ${payload}`);
      }
      if (parsed.values['no-ack'] !== true) consumer.ack(m);
    }
    console.error(`${received} message(s) received`);
    return 0;
  } finally {
    await client.close();
  }
}

const PERF_HELP = `Usage: admq perf produce TOPIC [options]
       admq perf consume TOPIC [options]

Generates load and prints live progress each second, then an HDR histogram summary.

perf produce options:
  --producers N        concurrent producers (default 1)
  --size BYTES         payload size (default 1024)
  --rate N             messages/s across all producers; 0 = as fast as possible (default 0)
  --duration-s S       how long to run (default 10)
  --count N            stop after N messages (default 100000000)
  --inflight N         unacknowledged sends across all producers (default 2000; a few group
                       commits' worth keeps the node busy, more only adds latency)

perf consume options:
  -s, --subscription   subscription name (default perf)
  -t, --type TYPE      subscription type (default exclusive)
  --initial-position   earliest or latest (default earliest)
  --duration-s S       how long to run (default 10)
  --count N            stop after N messages (default 100000000)

${GLOBAL_HELP}`;

async function cmdPerf(argv: string[]): Promise<number> {
  const parsed = parse(
    argv,
    {
      ...CONNECTION_OPTIONS,
      producers: { type: 'string' },
      size: { type: 'string' },
      rate: { type: 'string' },
      'duration-s': { type: 'string' },
      count: { type: 'string' },
      inflight: { type: 'string' },
      subscription: { type: 'string', short: 's' },
      type: { type: 'string', short: 't' },
      'initial-position': { type: 'string' },
    },
    PERF_HELP,
  );
  if (parsed === 'help') return help(PERF_HELP);
  const [mode, topic] = parsed.positionals;
  const v = parsed.values;
  const durationMs = int(v, 'duration-s', 10, 1) * 1000;
  const messagesMax = int(v, 'count', 100_000_000, 1);
  if (mode === 'produce') {
    const producers = int(v, 'producers', 1, 1);
    const result = await runProduceLoad({
      serviceUrl: serviceUrl(v),
      topic: need(topic, 'TOPIC', PERF_HELP),
      producers,
      payloadBytes: int(v, 'size', 1024, 1),
      ratePerSecond: int(v, 'rate', 0),
      durationMs,
      messagesMax,
      // runProduceLoad's window is per producer.
      inflightMax: Math.max(1, Math.floor(int(v, 'inflight', 2000, 1) / producers)),
      onProgress: (p) => console.error(`[${(p.elapsedMs / 1000).toFixed(0)}s] acked ${p.acked}  ${p.ratePerSecond.toFixed(0)} msg/s`),
    });
    printJson(result);
    return result.errors > 0 ? 1 : 0;
  }
  if (mode === 'consume') {
    const result = await runConsumeLoad({
      serviceUrl: serviceUrl(v),
      topic: need(topic, 'TOPIC', PERF_HELP),
      subscription: str(v, 'subscription') ?? 'perf',
      subscriptionType: (str(v, 'type') ?? 'exclusive') as SubscriptionType,
      initialPosition: (str(v, 'initial-position') ?? 'earliest') as 'earliest' | 'latest',
      durationMs,
      messagesMax,
      onProgress: (p) => console.error(`[${(p.elapsedMs / 1000).toFixed(0)}s] received ${p.received}  ${p.ratePerSecond.toFixed(0)} msg/s`),
    });
    printJson(result);
    return 0;
  }
  throw new UsageError(PERF_HELP);
}

const FAILOVER_HELP = `Usage: admq failover --tenant TENANT --to REGION [options]

Planned failover: moves a tenant's home region with no loss (RPO 0).
  1. fence   the current home refuses the tenant's writes (producers there get
             ADMQ_ERR_TENANT_FENCED, keep their messages and retry);
  2. drain   waits until the target holds every write the old home accepted (its HLC
             watermark for the old home passes the fence), showing the backlog as it goes;
  3. move    the tenant's home becomes REGION;
  4. unfence producers follow the new home (AdmqClient.forTenant) without a restart.
If the drain times out or a step fails, the fence is lifted and the home stays where it was.
The regions' admin endpoints are learned from the node at --admin-url (any region).

Options:
  --tenant TENANT     the tenant to move (required)
  --to REGION         the new home region, one of the tenant's allowed regions (required)
  --timeout-s S       longest wait for the drain (default 300)
  --json              print the result as JSON (phases' times in ms)

${GLOBAL_HELP}`;

async function cmdFailover(argv: string[]): Promise<number> {
  const parsed = parse(argv, { ...CONNECTION_OPTIONS, tenant: { type: 'string' }, to: { type: 'string' }, 'timeout-s': { type: 'string' }, json: { type: 'boolean' } }, FAILOVER_HELP);
  if (parsed === 'help') return help(FAILOVER_HELP);
  const tenant = str(parsed.values, 'tenant');
  const to = str(parsed.values, 'to');
  if (!tenant || !to) throw new UsageError(`--tenant and --to are required\n\n${FAILOVER_HELP}`);
  const regions = await new AdminClient(adminUrl(parsed.values)).call<Array<{ name: string; adminUrl: string }>>('GET', `/tenants/${encodeURIComponent(tenant)}/regions`);
  const adminUrls = Object.fromEntries(regions.map((r) => [r.name, r.adminUrl]));
  let lastLine = 0;
  const result = await plannedFailover({
    tenant,
    to,
    adminUrls,
    timeoutMs: int(parsed.values, 'timeout-s', 300, 1) * 1000,
    onProgress: (p) => {
      // The drain reports every poll; print it at most twice a second.
      if (p.phase === 'drain' && p.topicsPending !== 0 && Date.now() - lastLine < 500) return;
      lastLine = Date.now();
      const detail = p.phase === 'drain' ? ` — ${p.topicsPending} topic(s) behind, ${p.backlogEntries} entries to ship` : '';
      console.error(`[${(p.elapsedMs / 1000).toFixed(2)} s] ${p.phase} ${p.tenant}: ${p.from} → ${p.to}${detail}`);
    },
  });
  if (parsed.values.json === true) printJson(result);
  else console.log(`tenant ${result.tenant} moved from ${result.from} to ${result.to} in ${result.totalMs} ms (drain ${result.drainMs} ms, ${result.topics.length} topic(s)); RPO 0`);
  if (result.namespacesNotReplicatedToTarget.length > 0) console.error(`note: ${result.namespacesNotReplicatedToTarget.join(', ')} do not replicate to ${to}; their data stays where it is`);
  return 0;
}

const CLUSTER_HELP = `Usage: admq cluster status [--json]
       admq cluster lookup TOPIC [--json]

A regional cluster (brokers started with --metadata-store, see README.md):
  status         the brokers with their load, the bundle assignments, which is the load
                 manager, this broker's owned bundles and served topics, and the storage
                 nodes registered
  lookup TOPIC   which broker serves TOPIC (assigning it first if nobody does)

Options:
  --json       print the raw answer

${GLOBAL_HELP}`;

interface ClusterStatusView {
  brokerId: string;
  loadManagerLeader: boolean;
  brokers: Array<{ brokerId: string; grpcAddress: string; load: { topics: number; bundles: number; msgRateIn: number; msgRateOut: number; cpu: number } }>;
  assignments: Record<string, string>;
  ownedBundles: string[];
  servedTopics: string[];
  storageNodes: Array<{ nodeId: string; address: string }>;
}

async function cmdCluster(argv: string[]): Promise<number> {
  const parsed = parse(argv, { ...CONNECTION_OPTIONS, json: { type: 'boolean' } }, CLUSTER_HELP);
  if (parsed === 'help') return help(CLUSTER_HELP);
  const [verb, topic] = parsed.positionals;
  const admin = new AdminClient(adminUrl(parsed.values));
  if (verb === 'lookup') {
    if (!topic) throw new UsageError(`missing TOPIC\n\n${CLUSTER_HELP}`);
    const owner = await admin.call<{ brokerId: string; grpcAddress: string; bundle: string }>('GET', `/cluster/lookup/${topic.replace(/^persistent:\/\//, '')}`);
    if (parsed.values.json === true) printJson(owner);
    else console.log(`${topic}: broker ${owner.brokerId} at ${owner.grpcAddress} (bundle ${owner.bundle})`);
    return 0;
  }
  if (verb !== 'status') throw new UsageError(CLUSTER_HELP);
  const status = await admin.call<ClusterStatusView>('GET', '/cluster');
  if (parsed.values.json === true) {
    printJson(status);
    return 0;
  }
  const perBroker = new Map<string, number>();
  for (const broker of Object.values(status.assignments)) perBroker.set(broker, (perBroker.get(broker) ?? 0) + 1);
  console.log(`broker ${status.brokerId}${status.loadManagerLeader ? ' (load manager)' : ''}`);
  console.log(['broker', 'address', 'bundles', 'topics', 'msg/s in', 'msg/s out', 'cpu'].join('\t'));
  for (const b of status.brokers) {
    console.log([b.brokerId, b.grpcAddress, perBroker.get(b.brokerId) ?? 0, b.load.topics, b.load.msgRateIn.toFixed(0), b.load.msgRateOut.toFixed(0), b.load.cpu.toFixed(2)].join('\t'));
  }
  console.log(`storage nodes: ${status.storageNodes.map((n) => `${n.nodeId} (${n.address})`).join(', ') || 'none'}`);
  console.log(`served here: ${status.servedTopics.join(', ') || 'none'}`);
  return 0;
}

const REPLICATION_HELP = `Usage: admq replication status [--json]

Shows, for every replicated topic and region pair of the node, the link state, backlog,
replication delay (age of the oldest unreplicated entry; never 0 on a disconnected link),
the delay histogram, throughput and the remote's HLC watermark per origin; and what the
node refused as a receiver (residency, unknown senders, clock skew).

Options:
  --json       print the raw status

${GLOBAL_HELP}`;

async function cmdReplication(argv: string[]): Promise<number> {
  const parsed = parse(argv, { ...CONNECTION_OPTIONS, json: { type: 'boolean' } }, REPLICATION_HELP);
  if (parsed === 'help') return help(REPLICATION_HELP);
  if (parsed.positionals[0] !== 'status') throw new UsageError(REPLICATION_HELP);
  const status = await new AdminClient(adminUrl(parsed.values)).call<{
    region: string;
    links: Array<{ topic: string; from: string; to: string; state: string; backlogEntries: number; replicationDelayMs: number; delayHistogramMs: { p99: number }; throughputEntriesPerSecond: number; watermarks: Record<string, string>; lastError?: string }>;
    receiver: Record<string, number>;
  }>('GET', '/replication/status');
  if (parsed.values.json === true) {
    printJson(status);
    return 0;
  }
  console.log(`region ${status.region}`);
  console.log(['topic', 'link', 'state', 'backlog', 'delay ms', 'p99 ms', 'msg/s', 'watermarks'].join('\t'));
  for (const l of status.links) {
    const wm = Object.entries(l.watermarks).map(([o, h]) => `${o}:${formatHlc(h)}`).join(' ');
    console.log([l.topic, `${l.from} --> ${l.to}`, l.state, l.backlogEntries, l.replicationDelayMs, l.delayHistogramMs.p99, l.throughputEntriesPerSecond.toFixed(0), wm].join('\t'));
  }
  console.log(`received: ${JSON.stringify(status.receiver)}`);
  return 0;
}

function formatHlc(value: string): string {
  const v = BigInt(value);
  return `${new Date(Number(v >> 16n)).toISOString()}+${Number(v & 0xffffn)}`;
}

const DEV_HELP = `Usage: admq dev [options]

Runs a local deployment of three regions (shanghai, beijing, shenzhen) as three
region-node processes, linked by TLCP with generated SM2 certificates, replicating the
namespace public/default active-active. Ctrl-C stops them all.

Options:
  --dir DIR          where certificates, the topology and the data go (default ./data/dev)
  --base-port N      client ports N, N+1, N+2; replication N+100…; admin N+1000… (default 6650)
  --insecure         plain TCP links instead of TLCP`;

async function cmdDev(argv: string[]): Promise<number> {
  const parsed = parse(argv, { dir: { type: 'string' }, 'base-port': { type: 'string' }, insecure: { type: 'boolean' } }, DEV_HELP);
  if (parsed === 'help') return help(DEV_HELP);
  const { DEV_REGIONS, prepareDev, spawnRegions } = await import('./dev.ts');
  console.log('admq dev: preparing certificates and topology…');
  const layout = await prepareDev({
    dir: str(parsed.values, 'dir') ?? './data/dev',
    regions: DEV_REGIONS,
    basePort: int(parsed.values, 'base-port', 6650, 1),
    transport: parsed.values.insecure === true ? 'insecure' : 'tlcp',
  });
  const ready = new Set<string>();
  let readyPrinted = false;
  const children = spawnRegions(layout, (region, line) => {
    console.log(`[${region}] ${line}`);
    if (line.includes('is running')) ready.add(region);
    if (ready.size === layout.regions.length && !readyPrinted) {
      readyPrinted = true;
      const [a, b] = layout.regions as unknown as [{ name: string; grpc: string; admin: string }, { name: string; grpc: string; admin: string }];
      console.log(`
All ${layout.regions.length} regions are running; topology: ${layout.topologyPath}
Try active-active replication (in another terminal):
  npx admq topics create public/default/demo --admin-url http://${a.admin}
  npx admq produce public/default/demo -m "hello from ${a.name}" --service-url ${a.grpc}
  npx admq consume public/default/demo -s demo --initial-position earliest -n 1 --service-url ${b.grpc}
  npx admq replication status --admin-url http://${a.admin}
Ctrl-C stops every region.`);
    }
  });
  const exits = [...children.values()].map((child) => new Promise<number | null>((resolve) => child.once('exit', resolve)));
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
    void Promise.race(exits).then(() => resolve());
  });
  for (const child of children.values()) child.kill('SIGTERM');
  await Promise.all(exits);
  console.log('admq dev: all regions stopped');
  return 0;
}

async function cmdDelegated(module: string, fn: 'runCertsCommand' | 'runTlsCommand' | 'runStorageNode', argv: string[]): Promise<number> {
  const mod = (await import(module)) as Record<string, (argv: string[]) => Promise<number>>;
  const run = mod[fn];
  if (!run) throw new Error(`${module} does not export ${fn}`);
  return run(argv);
}

function need(value: string | undefined, name: string, usage: string): string {
  if (!value) throw new UsageError(`missing ${name}\n\n${usage}`);
  return value;
}

function help(text: string): number {
  console.log(text);
  return 0;
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  dev: cmdDev,
  start: cmdStart,
  'storage-node': (argv) => cmdDelegated('../region-node/ledger-storage/storage-node-main.ts', 'runStorageNode', argv),
  replication: cmdReplication,
  cluster: cmdCluster,
  failover: cmdFailover,
  drill: cmdDrill,
  report: cmdReport,
  tenants: cmdTenants,
  namespaces: cmdNamespaces,
  topics: cmdTopics,
  produce: cmdProduce,
  consume: cmdConsume,
  perf: cmdPerf,
  certs: (argv) => cmdDelegated('../tls/cli-commands.ts', 'runCertsCommand', argv),
  tls: (argv) => cmdDelegated('../tls/cli-commands.ts', 'runTlsCommand', argv),
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') return help(MAIN_HELP);
  const run = COMMANDS[command];
  if (!run) {
    console.error(`unknown command "${command}"\n\n${MAIN_HELP}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}`);
      return 2;
    }
    if (error instanceof AdmqClientError || error instanceof AdmqError) {
      console.error(`error: ${error.code}: ${error.message}`);
      return 1;
    }
    console.error(`error: ${(error as Error).stack ?? String(error)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
