#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into fuzz/corpus/<target>/.

Run once from the repo root (python3 fuzz/seeds.py); the committed corpora
started from these seeds plus what libFuzzer found, then `cargo fuzz cmin`.
"""
import base64, hashlib, hmac, json, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"


def write(target, name, data):
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


# creem_webhook: the raw body; a variant with `signature \n body` for the header path.
creem_secret = b"whsec_fuzz_creem"
for path in sorted((root / "fixtures" / "creem").glob("*.json")):
    body = path.read_bytes()
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    write("creem_webhook", path.stem, body)
    write("creem_webhook", path.stem + ".compact", compact)
    signature = hmac.new(creem_secret, compact, hashlib.sha256).hexdigest().encode()
    write("creem_webhook", path.stem + ".signed", signature + b"\n" + compact)
write("creem_webhook", "ignored", '{"id":"evt_1","eventType":"subscription.trialing","created_at":1,"object":{}}')

# clerk_webhook: `svix-id \n svix-timestamp \n svix-signature \n body`.
clerk_key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
now = 1_764_064_700
for path in sorted((root / "fixtures" / "clerk").glob("*.json")):
    body = path.read_bytes()
    mac = hmac.new(clerk_key, f"msg_1.{now}.".encode() + body, hashlib.sha256).digest()
    good = "v1," + base64.b64encode(mac).decode()
    write("clerk_webhook", path.stem, f"msg_1\n{now}\n{good}\n".encode() + body)
    write("clerk_webhook", path.stem + ".several", f"msg_1\n{now + 299}\nv1,bm90IGl0 {good}\n".encode() + body)
    write("clerk_webhook", path.stem + ".stale", f"msg_1\n{now - 301}\n{good}\n".encode() + body)
write("clerk_webhook", "session", 'msg_2\n1764064700\nv1,AAAA\n{"type":"session.created","data":{}}')
write("clerk_webhook", "updated", 'msg_3\n 1764064700 \nv2,x\n{"type":"user.updated","data":{"id":"user_1",'
      '"email_addresses":[{"id":"a","email_address":"A@B.C"}],"primary_email_address_id":"b","first_name":""}}')

# request_bodies: POST /api/credits bodies, history queries, hold bodies, keys.
bodies = [
    {"action": "deduct", "amount": 10, "reason": "video"},
    {"action": "add", "amount": 999999999, "userId": "user_1", "expiresAt": "2026-12-31T00:00:00Z",
     "effectiveAt": "2026-01-01T00:00:00Z", "category": "promotional", "priority": 100},
    {"action": "set", "amount": 0, "userId": "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"},
    {"action": "add", "amount": 1, "category": "paid", "priority": 0, "reason": None},
    {"action": "deduct", "amount": 1000000000},
    {"action": "add", "amount": 2.5},
    {"action": "add", "amount": 1e20},
    {"action": "set", "amount": -1, "userId": ""},
    {"action": "deduct", "amount": 5, "priority": 3},
    {"limit": 20, "before": 1},
    {"limit": 101, "before": 0},
    {"userId": "user_1", "amount": 50, "ttlSeconds": 900, "reason": "render"},
    {"amount": 3},
]
for i, body in enumerate(bodies):
    write("request_bodies", f"body{i}", json.dumps(body, separators=(",", ":")))
write("request_bodies", "key", "order-7f3c9a1e-2b44-4d5e-9a61-0c2f8f0e5b11")
write("request_bodies", "page", bytes([3]) + (50).to_bytes(8, "little") + (7).to_bytes(8, "little"))

# batch_adjust: `content-type \n body`.
write("batch_adjust", "csv", "text/csv\nuserId,action,amount,reason\nuser_1,add,100,welcome bonus\n"
      "user_2,deduct,5,correction, with a comma\nuser_3,set,0,reset\n")
write("batch_adjust", "csv-crlf", "text/csv; charset=utf-8\r\nuser_1,add,999999999,max\r\n\r\n user_2 , deduct , 1x , bad\r\n")
write("batch_adjust", "json", "application/json\n" + json.dumps({"adjustments": [
    {"userId": "user_1", "action": "add", "amount": 100, "reason": "welcome bonus"},
    {"userId": "user_2", "action": "set", "amount": 0, "reason": "reset"},
    {"userId": "user_3", "action": "deduct", "amount": "7", "reason": ""},
]}, separators=(",", ":")))
write("batch_adjust", "json-bad", 'application/json\n{"adjustments":[],"extra":1}')
