"""Drives the official Mercado Pago Python SDK (PyPI mercadopago==3.6.0) against Authcap.

Usage: mercadopago_sdk.py BASE_URL ACCESS_TOKEN   (BASE_URL is http://HOST:PORT/mercadopago)
Exits non-zero on any mismatch.
"""
import sys
import uuid

from mercadopago.config.config import Config

BASE, TOKEN = sys.argv[1], sys.argv[2]
Config._Config__api_base_url = BASE  # the SDK has no base-URL option

import mercadopago  # noqa: E402
from mercadopago.config import RequestOptions  # noqa: E402
from mercadopago.errors.exceptions import MercadoPagoError  # noqa: E402

assert mercadopago.__version__ == "3.6.0" if hasattr(mercadopago, "__version__") else True

sdk = mercadopago.SDK(TOKEN)
orders = sdk.order()


def check(label, actual, expected):
    if actual != expected:
        print(f"FAIL {label}: expected {expected!r}, got {actual!r}", file=sys.stderr)
        sys.exit(1)
    print(f"ok   {label}: {actual!r}")


def order_body(amount, capture_mode="manual", first_name="APRO"):
    return {
        "type": "online",
        "processing_mode": "automatic",
        "capture_mode": capture_mode,
        "total_amount": amount,
        "external_reference": "py-" + uuid.uuid4().hex,
        "payer": {"email": "buyer@example.com", "first_name": first_name},
        "transactions": {"payments": [{
            "amount": amount,
            "payment_method": {"id": "master", "type": "credit_card", "token": "card-token", "installments": 1},
        }]},
    }


def key(name):
    return RequestOptions(custom_headers={"X-Idempotency-Key": f"{name}-{uuid.uuid4().hex[:16]}"})


# create -> capture -> get
created = orders.create(order_body("100.00"))
check("create status", created["status"], 201)
order = created["response"]
oid = order["id"]
check("create order status", (order["status"], order["status_detail"]), ("action_required", "waiting_capture"))
check("id shape", (oid[:3], len(oid)), ("ORD", 29))
payment_id = order["transactions"]["payments"][0]["id"]
check("payment id", payment_id, "PAY" + oid[3:])

captured = orders.capture(oid, RequestOptions(custom_headers={"X-Idempotency-Key": "cap-" + oid}))
check("capture status", captured["status"], 200)
check("capture order status", (captured["response"]["status"], captured["response"]["status_detail"]),
      ("processed", "accredited"))
replayed = orders.capture(oid, RequestOptions(custom_headers={"X-Idempotency-Key": "cap-" + oid}))
check("capture replay", (replayed["status"], replayed["response"]["id"]), (200, oid))

got = orders.get(oid)
check("get status", got["status"], 200)
check("get order status", got["response"]["status"], "processed")
check("get paid", got["response"]["total_paid_amount"], "100.00")

# a second capture is refused, and raise_for_status reads message/error
again = orders.capture(oid, key("again"))
check("second capture", again["status"], 409)
check("second capture code", again["response"]["errors"][0]["code"], "cannot_capture_order")
try:
    again.raise_for_status()
    check("raise_for_status raised", False, True)
except MercadoPagoError as error:
    check("raise_for_status message", "cannot be captured" in str(error) or "captured" in error.message, True)

# refund: partial, then full
partial = orders.refund(oid, {"transactions": [{"id": payment_id, "amount": "25.00"}]})
check("partial refund status", partial["status"], 201)
check("partial refund order", (partial["response"]["status"], partial["response"]["status_detail"]),
      ("processed", "partially_refunded"))
check("partial refund amount", partial["response"]["transactions"]["refunds"][0]["amount"], "25.00")
full = orders.refund(oid)
check("full refund status", full["status"], 201)
check("full refund order", (full["response"]["status"], full["response"]["status_detail"]), ("refunded", "refunded"))

# cancel path
to_cancel = orders.create(order_body("10.00"))["response"]
cancelled = orders.cancel(to_cancel["id"])
check("cancel status", cancelled["status"], 200)
check("cancel order", (cancelled["response"]["status"], cancelled["response"]["status_detail"]),
      ("cancelled", "cancelled"))
check("capture after cancel", orders.capture(to_cancel["id"], key("c"))["status"], 409)

# a sandbox decline: FUND
declined = orders.create(order_body("10.00", first_name="FUND"))
check("FUND status", declined["status"], 402)
check("FUND code", declined["response"]["errors"][0]["code"], "failed")
check("FUND detail", declined["response"]["data"]["status_detail"], "insufficient_amount")

# automatic capture
auto = orders.create(order_body("5.00", capture_mode="automatic"))
check("automatic", (auto["status"], auto["response"]["status"]), (201, "processed"))
check("capture automatic", orders.capture(auto["response"]["id"], key("a"))["response"]["errors"][0]["code"],
      "operation_not_supported")

# errors
check("not found", orders.get("ORD" + "0" * 26)["status"], 404)
check("bad path", orders.get("nope")["status"], 400)
test_sdk = mercadopago.SDK("TEST-1234567890123456-123456-0123456789abcdef0123456789abcdef-123456789")
denied = test_sdk.order().get(oid)
check("test credentials", (denied["status"], denied["response"]["errors"][0]["code"]), (401, "invalid_credentials"))
print("python sdk: all checks passed")
