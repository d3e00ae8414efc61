/**
 * Starts the Huimin platform: database (PostgreSQL or embedded PGlite), schema migrations, the FHIR API and the
 * event relay. With PostgreSQL the HTTP API runs in several worker processes (HUIMIN_WORKERS) that share the port,
 * since one Node process saturates one core long before PostgreSQL does.
 */
import cluster from 'node:cluster';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import pino from 'pino';
import { loadConfig, type PlatformConfig } from './config';
import { createFhirServer, migrate, openDatabase } from './fhir-server';
import { installReferralContent, referralMigrations, startWorkflow, workflowStoreExtensions } from './referral-workflow';

async function startPrimary(config: PlatformConfig, logger: pino.Logger): Promise<void> {
  if (!config.databaseUrl) {
    mkdirSync(config.dataDir, { recursive: true });
  }
  const db = await openDatabase(config.databaseUrl, config.dataDir, config.databasePoolSize);
  const applied = await migrate(db, referralMigrations);
  logger.info({ storage: db.description, migrationsApplied: applied }, `storage: ${db.description}`);
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

let shuttingDown = false;

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
  const workflowRules = workflowStoreExtensions(config.workflow);
  const server = createFhirServer({ ...config, db, logger, ...workflowRules });
  await installReferralContent(server.repository);
  const workflow = config.workflowWorkers
    ? startWorkflow({
        repository: server.repository,
        db,
        queues: { redisUrl: config.redisUrl, prefix: config.redisPrefix },
        config: config.workflow,
        baseUrl: `${config.publicBaseUrl}${config.fhirBasePath}`,
        onError: (err, job) => logger.warn({ err: err.message, queue: job?.queueName, job: job?.id, attempt: job?.attemptsMade }, 'workflow job failed'),
      })
    : undefined;
  const listener = createServer(server.app).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    listener.once('listening', resolve);
    listener.once('error', reject);
  });
  // Longer than common load balancers' idle timeouts, so that they close idle connections first.
  listener.keepAliveTimeout = 65_000;
  onShutdown(logger, async () => {
    await new Promise((resolve) => listener.close(resolve));
    await workflow?.close();
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
