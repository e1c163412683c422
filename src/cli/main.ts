#!/usr/bin/env node
// The `petrel` command. Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM),
// 1 when the broker cannot start or fails, 2 for a bad flag or config value. A bad flag or value is told on
// stderr as a plain `petrel: ...` line (before logging starts); everything after goes through the logger
// (src/broker/logger.ts: JSON lines, or pretty ones on a terminal or with --log-format pretty).

import { runPasswd } from '../auth/passwd-command.js';
import { readFileSync } from 'node:fs';
import { createBroker, createLogger, PetrelError } from '../index.js';
import { StoreError } from '../store/types.js';
import { EmbeddedRedisError } from '../cluster/redis-server.js';
import { checkFiles, ConfigError, helpText, loadConfig, toBrokerOptions } from './config.js';
import { configSchemaText } from './schema.js';
import { checkWorkers, isWorker, reportReady, runPrimary, workerConfig } from './workers.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(): Promise<number> {
  // `petrel passwd ...`: the password-file tool (src/auth/passwd-command.ts), like mosquitto_passwd.
  if (process.argv[2] === 'passwd') return runPasswd(process.argv.slice(3));
  let config;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`petrel: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (config.help) {
    // As wide as the terminal, from 80 to 120 columns; 80 when piped.
    const columns = process.stdout.isTTY ? process.stdout.columns : 80;
    process.stdout.write(helpText(Math.max(80, Math.min(columns, 120))));
    return 0;
  }
  if (config.printSchema) {
    process.stdout.write(configSchemaText());
    return 0;
  }
  if (config.version) {
    process.stdout.write(`petrel ${version()}\n`);
    return 0;
  }
  // A worker of `--workers N` (src/cli/workers.ts): the primary checked and warned already.
  const worker = isWorker();
  const logger = createLogger(config.logLevel, { format: config.logFormat });
  if (!worker) for (const w of config.warnings) logger.warn(w, { event: 'config.warning' });
  try {
    checkFiles(config);
    checkWorkers(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`petrel: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (worker) config = workerConfig(config);
  else if (config.workers > 1) {
    try {
      return await runPrimary(config);
    } catch (err) {
      if (err instanceof EmbeddedRedisError) {
        process.stderr.write(`petrel: ${err.message}\n`);
        return err.exitCode;
      }
      throw err;
    }
  }
  let broker;
  try {
    broker = await createBroker({ ...toBrokerOptions(config), logger });
  } catch (err) {
    if (err instanceof PetrelError && err.code === 'PETREL_ERR_OPTION') {
      // A listener's key (listeners[2].cert) is named with the flag, file key or mosquitto.conf line it came from.
      const i = /^listeners\[(\d+)\]/.exec(err.key ?? '');
      const from = i ? config.listenerSources[Number(i[1])] : undefined;
      // A setting's key (limits.maxQoS) is named with the flag, variable, file key or line that set it.
      const set = err.key !== undefined && !i ? config.sources[err.key] : undefined;
      const source = from ? ` (listeners[${i![1]}] is ${from})` : set !== undefined && set !== err.key ? ` (set by ${set})` : '';
      process.stderr.write(`petrel: ${err.message}${source}\n`);
      return 2;
    }
    if (err instanceof StoreError) {
      logger.error(`cannot open the store: ${err.message}`, { event: 'store.open_failed', err });
      return 1;
    }
    throw err;
  }
  let stopping = false;
  const done = new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      if (stopping) {
        // A worker gets a Ctrl-C from the terminal and the same signal forwarded by the primary: one shutdown.
        if (worker) return;
        logger.warn(`${signal} again, exiting now`, { event: 'process.signal', signal });
        process.exit(1);
      }
      stopping = true;
      logger.info(`${signal}, shutting down`, { event: 'process.signal', signal });
      broker.close().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error(`shutdown failed: ${err instanceof Error ? err.message : String(err)}`, { event: 'broker.stop_failed', err });
          resolve(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // SIGHUP: re-read certificates, password and ACL files. A part that fails keeps its old settings.
    let reloading = false;
    process.on('SIGHUP', () => {
      if (stopping || reloading) return;
      reloading = true;
      logger.info('SIGHUP, reloading', { event: 'process.signal', signal: 'SIGHUP' });
      // The broker logs the outcome: config.reloaded, or config.reload_failed for each part that failed.
      broker.reload().then(
        () => {
          reloading = false;
        },
        (err: unknown) => {
          reloading = false;
          logger.error(`reload failed, the old settings stay: ${err instanceof Error ? err.message : String(err)}`, { event: 'config.reload_failed', err });
        },
      );
    });
    broker.onFatal((err) => {
      logger.error(`fatal: ${err instanceof Error ? err.message : String(err)}`, { event: 'broker.fatal', err });
      resolve(1);
    });
  });
  try {
    await broker.listen();
  } catch (err) {
    logger.error(err instanceof Error ? err.message : String(err), { event: 'broker.start_failed', err });
    await broker.close();
    return 1;
  }
  if (worker) reportReady();
  return done;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Timers and sockets are closed; exit promptly even if something lingers.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (err: unknown) => {
    process.stderr.write(`petrel: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
