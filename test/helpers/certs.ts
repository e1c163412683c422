// Test certificates made with the openssl command for each test run (never committed keys): a CA, a server
// certificate for localhost / 127.0.0.1 / ::1, a client certificate signed by the CA, a second unrelated CA with
// its own client, and a CRL of the first CA that revokes one more client certificate.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  dir: string;
  /** CA certificate (PEM file) that signed server.crt, client.crt and revoked.crt. */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Client certificate, CN 'device-1', subject 'CN=device-1,O=Petrel Test,C=DE'. */
  clientCert: string;
  clientKey: string;
  /** Client certificate of the same CA, revoked in crl. */
  revokedCert: string;
  revokedKey: string;
  /** CRL of the CA (PEM) revoking revoked.crt. */
  crl: string;
  /** An unrelated CA and a client certificate it signed (CN 'intruder'). */
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
  /** Remove the directory. */
  cleanup(): void;
}

function openssl(cwd: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string, cn: string): void {
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

function makeLeaf(dir: string, ca: string, name: string, subj: string, ext: string): void {
  openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', '2', '-sha256', '-out', `${name}.crt`, '-extfile', `${name}.ext`);
}

let cached: TestCerts | null = null;

/** The certificates of this test process (made once, ~1 s). */
export function testCerts(): TestCerts {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'petrel-certs-'));
  makeCa(dir, 'ca', 'Petrel Test CA');
  makeLeaf(dir, 'ca', 'server', '/CN=localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n');
  makeLeaf(dir, 'ca', 'client', '/C=DE/O=Petrel Test/CN=device-1', 'extendedKeyUsage=clientAuth\n');
  makeLeaf(dir, 'ca', 'revoked', '/CN=revoked-device', 'extendedKeyUsage=clientAuth\n');
  // A minimal CA database to revoke one certificate and issue a CRL.
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'crlnumber'), '01\n');
  writeFileSync(join(dir, 'ca.cnf'), [
    '[ca]', 'default_ca = testca', '[testca]', `dir = ${dir}`, 'database = $dir/index.txt',
    'crlnumber = $dir/crlnumber', 'default_md = sha256', 'default_crl_days = 2',
    'certificate = $dir/ca.crt', 'private_key = $dir/ca.key', '',
  ].join('\n'));
  openssl(dir, 'ca', '-config', 'ca.cnf', '-revoke', 'revoked.crt');
  openssl(dir, 'ca', '-config', 'ca.cnf', '-gencrl', '-out', 'ca.crl');
  makeCa(dir, 'other-ca', 'Unrelated CA');
  makeLeaf(dir, 'other-ca', 'other-client', '/CN=intruder', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string): string => join(dir, f);
  cached = {
    dir,
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    revokedCert: p('revoked.crt'),
    revokedKey: p('revoked.key'),
    crl: p('ca.crl'),
    otherCa: p('other-ca.crt'),
    otherClientCert: p('other-client.crt'),
    otherClientKey: p('other-client.key'),
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
      cached = null;
    },
  };
  return cached;
}

/** The PEM text of one of the files. */
export const pem = (file: string): string => readFileSync(file, 'utf8');

/**
 * One more server certificate of the test CA (for localhost / 127.0.0.1 / ::1), e.g. to swap in on reload:
 * files `${name}.crt` and `${name}.key` in the certificates' directory.
 */
export function extraServerCert(name: string, cn: string): { cert: string; key: string } {
  const c = testCerts();
  makeLeaf(c.dir, 'ca', name, `/CN=${cn}`, 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n');
  return { cert: join(c.dir, `${name}.crt`), key: join(c.dir, `${name}.key`) };
}
