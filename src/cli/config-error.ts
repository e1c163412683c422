// The error of the `petrel` command's configuration: the key it came from (a flag, a PETREL_* variable, a config
// file key, or `file:line: directive` of a mosquitto.conf) and why. main.ts prints it and exits 2.

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`${key}: ${reason}`);
    this.name = 'ConfigError';
  }
}
