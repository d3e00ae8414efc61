/**
 * Starts the Huimin platform: database (PostgreSQL or embedded PGlite), schema migrations, the FHIR API and the
 * event relay. With PostgreSQL the HTTP API runs in several worker processes (HUIMIN_WORKERS) that share the port,
 * since one Node process saturates one core long before PostgreSQL does.
 */
import cluster from 'node:cluster';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import pino from 'pino';
import { adapterMigrations, createAdapters, Hl7Outbound, hl7Operations, Hl7ReferralSender, TerminologyTranslator } from './adapters';
import { loadConfig, type PlatformConfig } from './config';
import { ClientStore, UserStore, ConsentDecisions, createFhirServer, FhirRepository, StatisticsKeeper, loadOrCreateSigningKey, migrate, openDatabase, recoverJournals, securityMigrations } from './fhir-server';
import { BindingValidator, coreBindingValueSets, HOT_PATH_MAX_AGE_MS, hospitalLabSystem, createTerminologyService, loadBundledContent, terminologyMigrations, terminologyOperations } from './terminology';
import { installReferralContent, referralMigrations, securityConsent, startWorkflow, workflowStoreExtensions } from './referral-workflow';
import { createSupervision, supervisionMigrations } from './supervision';
import { Hl7AdvisoryNotice, installRecognitionContent, recognitionMigrations, recognitionStoreExtensions, recognitionIndicator, recognitionWindows, startRecognition } from './recognition';
import { collectUnusedContent, installRegistryContent, registryMigrations, registryStoreExtensions, sweepAbandonedUploads } from './registry';
import { portalApp, portalRouter } from './portal';
import { MasterPatientIndex, mpiMigrations } from './mpi';
import { installImplementationGuide, loadImplementationGuide, registerImplementationGuide } from './conformance';

async function startPrimary(config: PlatformConfig, logger: pino.Logger): Promise<void> {
  if (!config.databaseUrl) {
    mkdirSync(config.dataDir, { recursive: true });
  }
  const db = await openDatabase(config.databaseUrl, config.dataDir, config.databasePoolSize);
  const applied = await migrate(db, [
    ...securityMigrations,
    ...terminologyMigrations,
    ...adapterMigrations,
    ...referralMigrations,
    ...recognitionMigrations,
    ...registryMigrations,
    ...mpiMigrations,
    ...supervisionMigrations,
  ]);
  logger.info({ storage: db.description, migrationsApplied: applied }, `storage: ${db.description}`);
  // Before any worker starts: the token signing key (shared by all of them) and the administrator client.
  await loadOrCreateSigningKey(db);
  const admin = await new ClientStore(db).ensureAdmin(config.adminClient);
  const adminUser = await new UserStore(db, { idleS: config.security.sessionIdleS, maxS: config.security.sessionMaxS }).ensureAdmin(config.adminUser);
  // AuditEvents journaled by processes of an earlier run that died before moving them to the database.
  const recovered = await recoverJournals(db, config.auditJournalDir, { all: true });
  if (recovered > 0) {
    logger.warn({ recovered }, `moved ${recovered} audit events left in journals by an earlier run into the audit log`);
  }
  if (admin.secret) {
    printGeneratedAdmin(config, admin.clientId, admin.secret);
  }
  if (adminUser?.password) {
    printGeneratedAdminUser(config, adminUser.username, adminUser.password);
  }
  // Terminology content (FHIR core, v2, v3, regional code systems): written on first start, skipped afterwards.
  const contentRepository = new FhirRepository(db, { enforceReferentialIntegrity: config.enforceReferentialIntegrity, baseUrl: fhirBaseUrl(config) });
  await loadBundledContent(contentRepository, createTerminologyService(db, contentRepository), logger);
  await installRegistryContent(contentRepository);
  // The regional implementation guide's profiles, extensions and terminology: written when missing or changed.
  await installImplementationGuide(contentRepository, loadImplementationGuide(config.conformance.canonicalBase));
  await sweepAbandonedUploads(db);
  await collectUnusedContent(db);
  // PGlite is one in-process database: it cannot be shared by worker processes.
  const workers = config.databaseUrl ? config.workers : 1;
  if (workers > 1) {
    await db.close();
    for (let i = 0; i < workers; i++) {
      cluster.fork();
    }
    cluster.on('exit', (worker, code, signal) => {
      if (!shuttingDown) {
        logger.error({ pid: worker.process.pid, code, signal }, 'worker exited; starting another');
        cluster.fork();
      }
    });
    logger.info(`Huimin FHIR R4 API listening on http://${config.host}:${config.port}${config.fhirBasePath} with ${workers} workers (storage: ${db.description})`);
    onShutdown(logger, async () => {
      for (const worker of Object.values(cluster.workers ?? {})) {
        worker?.kill('SIGTERM');
      }
    });
    return;
  }
  await serve(config, logger, db);
  logger.info(`Huimin FHIR R4 API listening on http://${config.host}:${config.port}${config.fhirBasePath} (storage: ${db.description})`);
}

/**
 * The generated administrator's credentials, shown once on the console (never through the logger, whose output
 * may be shipped elsewhere); they are not stored anywhere in clear and cannot be shown again.
 */
function printGeneratedAdmin(config: PlatformConfig, clientId: string, secret: string): void {
  const tokenUrl = `${config.publicBaseUrl}/auth/token`;
  console.log(
    [
      '',
      '================================================================================',
      'An administrator client was generated (HUIMIN_ADMIN_CLIENT_ID/SECRET are unset).',
      'Its secret is shown this once; keep it safe, or set the two variables and restart.',
      `  client id:     ${clientId}`,
      `  client secret: ${secret}`,
      'Get an access token:',
      `  curl -s -u '${clientId}:${secret}' -d grant_type=client_credentials ${tokenUrl}`,
      '================================================================================',
      '',
    ].join('\n'),
  );
}

/** The generated first administrator user of the web pages, shown once like the administrator client. */
function printGeneratedAdminUser(config: PlatformConfig, username: string, password: string): void {
  console.log(
    [
      '',
      '================================================================================',
      'An administrator user was generated (HUIMIN_ADMIN_USER/PASSWORD are unset).',
      'Its password is shown this once; sign in and create the other users, or set the two variables and restart.',
      `  sign in at:    ${config.publicBaseUrl}/app`,
      `  username:      ${username}`,
      `  password:      ${password}`,
      '================================================================================',
      '',
    ].join('\n'),
  );
}

let shuttingDown = false;

function fhirBaseUrl(config: PlatformConfig): string {
  return `${config.publicBaseUrl}${config.fhirBasePath}`;
}

function onShutdown(logger: pino.Logger, stop: () => Promise<void>): void {
  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) {
      return;
    }
    shuttingDown = true;
    logger.info(`${signal} received: shutting down`);
    await stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

/**
 * Runs the API, the event relay and (unless WORKFLOW_WORKERS=false) the workflow's BullMQ workers in this process
 * until a signal stops it. Every worker process runs them: BullMQ gives each job to one worker, so they share the work.
 */
async function serve(config: PlatformConfig, logger: pino.Logger, db: Awaited<ReturnType<typeof openDatabase>>): Promise<void> {
  // The terminology service reads CodeSystems, ValueSets and ConceptMaps through a repository of its own.
  const terminology = createTerminologyService(db, new FhirRepository(db, { enforceReferentialIntegrity: config.enforceReferentialIntegrity, baseUrl: fhirBaseUrl(config) }));
  const codeValidator = new BindingValidator(terminology, { onError: (vs, err) => logger.debug({ err }, `binding to ${vs} not checked`) });
  // Compile the value sets of R4's required and extensible bindings in the background, before writes ask.
  void codeValidator.warm(coreBindingValueSets());
  // This process's validator checks writes claiming the regional profiles, and the regional extensions.
  registerImplementationGuide(loadImplementationGuide(config.conformance.canonicalBase));
  const workflowRules = workflowStoreExtensions(config.workflow);
  // Result recognition looks at every hospital's results through a repository of its own (consents applied per record).
  const recognition = recognitionStoreExtensions({
    db,
    repository: new FhirRepository(db, { enforceReferentialIntegrity: config.enforceReferentialIntegrity, baseUrl: fhirBaseUrl(config) }),
    terminology,
    consent: new ConsentDecisions(db),
    authorities: config.recognition.authorities,
    timeZone: config.recognition.timeZone,
  });
  const registry = registryStoreExtensions(db, config.registry);
  // The master patient index: its Patient write rule, event queue, operations and linked-patient search expansion.
  const mpi = new MasterPatientIndex(config.mpi);
  const mpiRules = mpi.storeExtensions();
  // Duplicate tests are judged by the recognition module's windows (codes it does not know: the rule's own).
  const supervision = createSupervision(config.supervision, {
    windows: recognitionWindows(new FhirRepository(db, { enforceReferentialIntegrity: config.enforceReferentialIntegrity, baseUrl: fhirBaseUrl(config) })),
    indicators: [recognitionIndicator],
    // Locally coded drugs get their ATC ingredient through the hospitals' ConceptMaps.
    terminology,
  });
  const server = createFhirServer({
    ...config,
    db,
    logger,
    ...workflowRules,
    eventQueues: [...workflowRules.eventQueues, ...recognition.eventQueues, ...mpiRules.eventQueues, ...supervision.eventQueues],
    writeInterceptors: [...workflowRules.writeInterceptors, ...registry.writeInterceptors, ...mpiRules.writeInterceptors],
    binaryStore: registry.binaryStore,
    patientLinkParameter: mpiRules.patientLinkParameter,
    operations: [
      ...terminologyOperations(terminology),
      ...hl7Operations,
      ...workflowRules.operations,
      ...recognition.operations,
      ...registry.operations,
      ...mpiRules.operations,
      ...supervision.operations,
    ],
    codeValidator,
    security: { ...config.security, apps: [portalApp(config.publicBaseUrl)] },
    routes: [portalRouter()],
    auditJournalDir: config.auditJournalDir,
    bulkExport: config.bulkExport,
  });
  // HL7 v2 over MLLP in every process that serves the API, listening before the API answers ready. With several
  // workers the cluster shares the port and hands each new connection to one of them (a sender's messages on one
  // connection stay in one process, in order).
  const adapters = createAdapters({
    repo: server.repository,
    logger,
    translator: new TerminologyTranslator(terminology, HOT_PATH_MAX_AGE_MS, hospitalLabSystem),
    nationalIdAliases: config.hl7.nationalIdAliases,
  });
  if (config.hl7.enabled) {
    const port = await adapters.listen(config.hl7);
    if (cluster.isPrimary || cluster.worker?.id === 1) {
      logger.info(`HL7 v2 MLLP${config.hl7.tls ? ' over TLS' : ''} listening on ${config.hl7.host}:${port}`);
    }
  }
  // Outbound HL7 v2 (REF^I12, result notifications) that workflows enqueue: every process takes jobs from BullMQ.
  const outbound = new Hl7Outbound({ repo: server.repository, redisUrl: config.redisUrl, prefix: config.redisPrefix, logger });
  outbound.start();
  await installReferralContent(server.repository);
  await installRecognitionContent(server.repository);
  await mpi.start({
    repository: server.repository,
    redisUrl: config.redisUrl,
    redisPrefix: config.redisPrefix,
    onError: (err) => logger.warn({ err: err.message }, 'master patient index: linking job failed'),
  });
  const workflow = config.workflowWorkers
    ? startWorkflow({
        repository: server.repository,
        db,
        queues: { redisUrl: config.redisUrl, prefix: config.redisPrefix },
        config: config.workflow,
        consent: securityConsent(new ConsentDecisions(db), server.repository),
        hl7: new Hl7ReferralSender(outbound, server.repository),
        baseUrl: `${config.publicBaseUrl}${config.fhirBasePath}`,
        onError: (err, job) => logger.warn({ err: err.message, queue: job?.queueName, job: job?.id, attempt: job?.attemptsMade }, 'workflow job failed'),
      })
    : undefined;
  const recognitionEngine = config.workflowWorkers
    ? startRecognition({
        repository: server.repository,
        db,
        finder: recognition.finder,
        queues: { redisUrl: config.redisUrl, prefix: config.redisPrefix },
        notifier: new Hl7AdvisoryNotice(outbound, server.repository),
        onError: (err, job) => logger.warn({ err: err.message, queue: job?.queueName, job: job?.id, attempt: job?.attemptsMade }, 'recognition job failed'),
      })
    : undefined;
  // Supervision: rules, Measures and the bureau installed (once), operations answering; its workers where configured.
  await supervision.attach(
    { db, repository: server.repository },
    { onError: (err, job) => logger.warn({ err: err.message, queue: job?.queueName, job: job?.id, attempt: job?.attemptsMade }, 'supervision job failed') },
  );
  if (config.supervisionWorkers) {
    supervision.startWorkers({ redisUrl: config.redisUrl, prefix: config.redisPrefix });
  }
  const listener = createServer(server.app).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    listener.once('listening', resolve);
    listener.once('error', reject);
  });
  // Longer than common load balancers' idle timeouts, so that they close idle connections first.
  listener.keepAliveTimeout = 65_000;
  // One process keeps the planner's statistics where autovacuum does not (see db/statistics.ts).
  const statistics = cluster.isPrimary || cluster.worker?.id === 1 ? new StatisticsKeeper(db, logger) : undefined;
  await statistics?.start();
  onShutdown(logger, async () => {
    await statistics?.stop();
    await adapters.stop();
    await outbound.stop();
    await new Promise((resolve) => listener.close(resolve));
    await workflow?.close();
    await recognitionEngine?.close();
    await supervision.close();
    await mpi.stop();
    await server.stop();
    await db.close();
  });
}

async function startWorker(config: PlatformConfig, logger: pino.Logger): Promise<void> {
  const db = await openDatabase(config.databaseUrl, config.dataDir, config.databasePoolSize);
  await serve(config, logger, db);
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = pino({ level: config.logLevel });
  if (cluster.isPrimary) {
    await startPrimary(config, logger);
  } else {
    await startWorker(config, logger);
  }
}

main().catch((err: unknown) => {
  console.error('Huimin failed to start:', err);
  process.exit(1);
});
