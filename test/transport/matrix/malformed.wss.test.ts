// test/integration/malformed.test.ts over WebSocket over TLS (wss://…/mqtt): the same suite, its clients
// connected through the helpers of test/helpers/transport.ts (PETREL_TEST_TRANSPORT=wss).
process.env.PETREL_TEST_TRANSPORT = 'wss';
await import('../../integration/malformed.test.js');
