import 'reflect-metadata';
import { bootstrap } from './bootstrap';
import { ConfigError, loadConfig } from './config/config.loader';

function configOrExit() {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      // A configuration mistake is the operator's to fix: say what is wrong, no stack trace.
      process.stderr.write(`redis-gateway: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

void bootstrap(configOrExit());
