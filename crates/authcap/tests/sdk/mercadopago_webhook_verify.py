"""Verifies Mercado Pago notifications with the pinned official SDK's validator.

Usage: mercadopago_webhook_verify.py FILE, where FILE holds {"secret", "notifications":
[{"x_signature", "x_request_id", "data_id"}]}. Raises (exits non-zero) if one does not verify.
"""
import json
import sys

from mercadopago.webhook.validator import WebhookSignatureValidator

with open(sys.argv[1]) as f:
    data = json.load(f)
for n in data["notifications"]:
    WebhookSignatureValidator.validate(
        n["x_signature"],
        n["x_request_id"],
        n["data_id"],
        data["secret"],
        tolerance_seconds=300,
    )
print(f"verified {len(data['notifications'])} notifications")
