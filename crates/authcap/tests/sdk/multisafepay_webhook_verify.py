"""Verifies MultiSafepay notifications with the pinned official Python SDK's validator.

Usage: multisafepay_webhook_verify.py FILE, where FILE holds {"api_key", "notifications":
[{"body", "auth"}]}. Raises (exits non-zero) if one does not verify.
"""
import json
import sys

from multisafepay.util.webhook import Webhook

with open(sys.argv[1]) as f:
    data = json.load(f)
for n in data["notifications"]:
    if not Webhook.validate(n["body"], n["auth"], data["api_key"]):
        raise SystemExit(f"did not verify: {n}")
print(f"verified {len(data['notifications'])} notifications")
