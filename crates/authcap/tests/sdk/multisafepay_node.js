// Drives the official MultiSafepay Node wrapper (@multisafepay/api-wrapper 1.0.1) against Authcap.
// Usage: node multisafepay_node.js BASE_URL API_KEY   (BASE_URL ends in /multisafepay/v1/json/)
// create (manual capture) -> partial capture -> capture the rest -> get -> refund -> cancel.
const assert = require('assert');
const MSPClient = require('@multisafepay/api-wrapper').default;

const [base, key] = process.argv.slice(2);
const c = new MSPClient(key, { environment: 'test' });
for (const r of [c.orders, c.refunds, c.gateways, c.issuers]) r.client.defaults.baseURL = base;

(async () => {
  const created = await c.orders.create({
    type: 'direct', order_id: 'node-1', gateway: 'VISA', currency: 'EUR', amount: 1000,
    description: 'Node order', capture: 'manual',
    payment_options: { notification_url: 'http://127.0.0.1/n', redirect_url: 'http://127.0.0.1/ok' },
    gateway_info: { card_number: '4242424242424242' },
  });
  assert.strictEqual(created.success, true, JSON.stringify(created));
  assert.strictEqual(created.data.status, 'completed');
  assert.strictEqual(created.data.financial_status, 'initialized');

  const first = await c.orders.client.post('orders/node-1/capture',
    { amount: 400, new_order_id: 'node-1-c1', new_order_status: 'completed', carrier: 'DHL' });
  assert.strictEqual(first.data.success, true);
  assert.strictEqual(first.data.data.order_id, 'node-1-c1');
  assert.strictEqual(typeof first.data.data.transaction_id, 'number');

  const rest = await c.orders.client.post('orders/node-1/capture',
    { new_order_id: 'node-1-c2', new_order_status: 'completed' });
  assert.strictEqual(rest.data.data.order_id, 'node-1-c2');

  const got = await c.orders.get('node-1');
  assert.strictEqual(got.success, true);
  assert.strictEqual(got.data.financial_status, 'completed');
  assert.strictEqual(got.data.amount, 1000);
  assert.strictEqual(typeof got.data.transaction_id, 'number');
  const sub = await c.orders.get('node-1-c2');
  assert.strictEqual(sub.data.amount, 600);

  const refund = await c.refunds.create('node-1', { currency: 'EUR', amount: 1000, description: 'all' });
  assert.strictEqual(refund.success, true, JSON.stringify(refund));
  const refunded = await c.orders.get('node-1');
  assert.strictEqual(refunded.data.status, 'refunded');
  assert.strictEqual(refunded.data.amount_refunded, 1000);

  // Errors resolve with {error_code, error_info}.
  const tooMuch = await c.refunds.create('node-1', { currency: 'EUR', amount: 1, description: 'x' });
  assert.strictEqual(tooMuch.error_code, 1034, JSON.stringify(tooMuch));
  const missing = await c.orders.get('nope');
  assert.strictEqual(missing.error_code, 1006, JSON.stringify(missing));

  // Cancel an order through update (PATCH orders/{id}).
  await c.orders.create({ type: 'direct', order_id: 'node-2', gateway: 'VISA', currency: 'EUR',
    amount: 500, description: 'Node order 2', capture: 'manual' });
  const cancelled = await c.orders.update('node-2', { status: 'cancelled', exclude_order: true });
  assert.strictEqual(cancelled.success, true, JSON.stringify(cancelled));
  const voided = await c.orders.get('node-2');
  assert.strictEqual(voided.data.status, 'void');
  assert.strictEqual(voided.data.financial_status, 'void');

  const wrong = new MSPClient('wrong-key', { environment: 'test' });
  wrong.orders.client.defaults.baseURL = base;
  const denied = await wrong.orders.get('node-1');
  assert.strictEqual(denied.error_code, 1032, JSON.stringify(denied));
  console.log('multisafepay node wrapper: ok');
})().catch((error) => { console.error(error); process.exit(1); });
