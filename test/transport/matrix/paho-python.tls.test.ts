// test/integration/paho-python.test.ts over TLS (mqtts, the test CA): the same suite, its clients
// connected through the helpers of test/helpers/transport.ts (PETREL_TEST_TRANSPORT=tls).
process.env.PETREL_TEST_TRANSPORT = 'tls';
await import('../../integration/paho-python.test.js');
