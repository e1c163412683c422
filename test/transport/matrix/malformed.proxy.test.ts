// test/integration/malformed.test.ts over PROXY-fronted TCP (a front sends PROXY v1/v2 headers): the same suite, its clients
// connected through the helpers of test/helpers/transport.ts (PETREL_TEST_TRANSPORT=proxy).
process.env.PETREL_TEST_TRANSPORT = 'proxy';
await import('../../integration/malformed.test.js');
