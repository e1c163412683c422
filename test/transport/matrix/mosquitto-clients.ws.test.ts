// test/integration/mosquitto-clients.test.ts over WebSocket (ws://…/mqtt): the same suite, its clients
// connected through the helpers of test/helpers/transport.ts (PETREL_TEST_TRANSPORT=ws).
process.env.PETREL_TEST_TRANSPORT = 'ws';
await import('../../integration/mosquitto-clients.test.js');
