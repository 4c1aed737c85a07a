"""Recomputes an AWS SigV4 signature with botocore, for placements::* tests.

Reads JSON on stdin: method, url (as received, with the port), headers (the signed ones, as
received), body_hex, region, service, access_key_id, secret_access_key, amz_date. Prints JSON:
the signature and signed headers botocore computes, and the SHA-256 of the body it got.
Credentials come on stdin, never on the command line.
"""
import hashlib
import json
import sys

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

d = json.load(sys.stdin)
creds = Credentials(d["access_key_id"], d["secret_access_key"])
cls = S3SigV4Auth if d["service"] == "s3" else SigV4Auth
auth = cls(creds, d["service"], d["region"])
body = bytes.fromhex(d["body_hex"])
req = AWSRequest(method=d["method"], url=d["url"], data=body)
for name, value in d["headers"]:
    if name in req.headers:
        req.headers[name] = req.headers[name] + "," + value
    else:
        req.headers[name] = value
req.context["timestamp"] = d["amz_date"]
canonical = auth.canonical_request(req)
string_to_sign = auth.string_to_sign(req, canonical)
print(json.dumps({
    "signature": auth.signature(string_to_sign, req),
    "signed_headers": auth.signed_headers(auth.headers_to_sign(req)),
    "body_sha256": hashlib.sha256(body).hexdigest(),
}))
