// Drives the official Mercado Pago Node SDK (npm mercadopago@3.6.1) against Authcap.
// Usage: node mercadopago_sdk.js BASE_URL ACCESS_TOKEN   (BASE_URL is http://HOST:PORT/mercadopago)
// Exits non-zero on any mismatch.
'use strict';
const [base, token] = process.argv.slice(2);
require('mercadopago/dist/utils/config').AppConfig.BASE_URL = base;
const { MercadoPagoConfig, Order } = require('mercadopago');

function check(label, actual, expected) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) {
    console.error(`FAIL ${label}: expected ${e}, got ${a}`);
    process.exit(1);
  }
  console.log(`ok   ${label}: ${a}`);
}

function orderBody(amount, captureMode = 'manual', firstName = 'APRO') {
  return {
    type: 'online', processing_mode: 'automatic', capture_mode: captureMode, total_amount: amount,
    external_reference: 'js-' + Math.random().toString(36).slice(2),
    payer: { email: 'buyer@example.com', first_name: firstName },
    transactions: { payments: [{ amount, payment_method: { id: 'visa', type: 'credit_card', token: 'tok', installments: 1 } }] },
  };
}

const ERROR_CLASS = { 400: 'MPBadRequestError', 401: 'MPAuthenticationError', 402: 'MPPaymentError',
  404: 'MPNotFoundError', 409: 'MPIdempotencyError' };

async function rejects(label, promise, status, code) {
  try {
    await promise;
  } catch (error) {
    check(`${label} class`, error.name, ERROR_CLASS[status]);
    check(`${label} status`, error.status, status);
    check(`${label} message`, typeof error.message === 'string' && error.message.length > 0, true);
    check(`${label} code`, error.causes[0].code, code);
    return;
  }
  check(`${label} rejected`, false, true);
}

(async () => {
  const suffix = Math.random().toString(36).slice(2);
  // A sticky key: the SDK resends the create key on capture (another operation: accepted).
  const client = new MercadoPagoConfig({ accessToken: token, options: { maxRetries: 0 } });
  const order = new Order(client);
  const created = await order.create({ body: orderBody('100.00'), requestOptions: { idempotencyKey: 'create-' + suffix } });
  check('create status', created.api_response.status, 201);
  check('create order', [created.status, created.status_detail], ['action_required', 'waiting_capture']);
  const captured = await order.capture({ id: created.id });
  check('capture status', captured.api_response.status, 200);
  check('capture order', [captured.status, captured.status_detail], ['processed', 'accredited']);
  const got = await order.get({ id: created.id });
  check('get order', [got.status, got.total_paid_amount], ['processed', '100.00']);
  const paymentId = got.transactions.payments[0].id;

  // Partial then full refund.
  const fresh = new Order(new MercadoPagoConfig({ accessToken: token, options: { maxRetries: 0 } }));
  const partial = await fresh.refund({ id: created.id, body: { transactions: [{ id: paymentId, amount: '40.00' }] } });
  check('partial refund', [partial.status, partial.status_detail], ['processed', 'partially_refunded']);
  const full = await fresh.refund({ id: created.id });
  check('full refund', [full.status, full.status_detail, full.transactions.refunds.length], ['refunded', 'refunded', 2]);

  // Cancel path.
  const toCancel = await fresh.create({ body: orderBody('10.00') });
  const cancelled = await fresh.cancel({ id: toCancel.id });
  check('cancel', [cancelled.api_response.status, cancelled.status], [200, 'cancelled']);
  await rejects('capture cancelled', fresh.capture({ id: toCancel.id }), 409, 'cannot_capture_order');

  // The sticky capture key reused on another order → 409.
  const other = await fresh.create({ body: orderBody('3.00') });
  await rejects('sticky key on another order',
    order.capture({ id: other.id }), 409, 'idempotency_key_already_used');

  // Declines and errors.
  await rejects('FUND', fresh.create({ body: orderBody('10.00', 'manual', 'FUND') }), 402, 'failed');
  await rejects('not found', fresh.get({ id: 'ORD' + '0'.repeat(26) }), 404, 'order_not_found');
  const auto = await fresh.create({ body: orderBody('5.00', 'automatic') });
  check('automatic', auto.status, 'processed');
  await rejects('capture automatic', fresh.capture({ id: auto.id }), 409, 'operation_not_supported');
  const bad = new Order(new MercadoPagoConfig({ accessToken: 'APP_USR-0-0-0-0', options: { maxRetries: 0 } }));
  await rejects('bad token', bad.get({ id: created.id }), 401, '401');
  console.log('node sdk: all checks passed');
})().catch((error) => {
  console.error('FAIL unexpected error', error);
  process.exit(1);
});
