#!/usr/bin/env python3
"""A small MCP server over stdio that charges for its tools the way the IETF
draft "Payment Authentication Scheme: JSON-RPC & MCP Transport"
(draft-payment-transport-mcp) says: a `tools/call` without a credential is
answered with the JSON-RPC error -32042 whose `data.challenges` holds the
price; the retry carries `params._meta["org.paymentauth/credential"]` naming
the challenge; the success carries `_meta["org.paymentauth/receipt"]`.

Test knobs are arguments of the call (a real server decides its own price):
`price` (base units, a string), `currency` (default "usd"), and `shape` to
send a malformed challenge. Every message received is appended to the file
named by $MPP_LOG, so tests can tell what reached the server.
"""
import json
import os
import sys

LOG = os.environ.get("MPP_LOG")
issued = {}
counter = [0]


def log(line):
    if LOG:
        with open(LOG, "a") as f:
            f.write(line + "\n")


def send(msg):
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def challenge(cid, price, currency, extra=None):
    c = {
        "id": cid,
        "realm": "mpp-test.local",
        "method": "stripe",
        "intent": "charge",
        "request": {"amount": price, "currency": currency, "recipient": "acct_test"},
    }
    if extra:
        c.update(extra)
    return c


def payment_required(rid, challenges):
    send({"jsonrpc": "2.0", "id": rid, "error": {
        "code": -32042, "message": "Payment Required",
        "data": {"httpStatus": 402, "challenges": challenges}}})


def call(rid, params):
    args = params.get("arguments") or {}
    meta = params.get("_meta") or {}
    cred = meta.get("org.paymentauth/credential")
    name = params.get("name")
    if cred is not None:
        cid = cred.get("challenge", {}).get("id")
        if cid not in issued:
            send({"jsonrpc": "2.0", "id": rid, "error": {
                "code": -32043, "message": "Payment verification failed"}})
            return
        del issued[cid]
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": "paid result of " + name}],
            "_meta": {"org.paymentauth/receipt": {
                "status": "success", "challengeId": cid, "method": "stripe",
                "reference": "pi_" + cid, "timestamp": "2026-01-01T00:00:00Z"}}}})
        return
    counter[0] += 1
    cid = "ch-%d-%d" % (os.getpid(), counter[0])
    issued[cid] = True
    price = args.get("price", "40")
    currency = args.get("currency", "usd")
    shape = args.get("shape", "ok")
    if shape == "ok":
        payment_required(rid, [challenge(cid, price, currency)])
    elif shape == "two_same":
        issued[cid + "b"] = True
        payment_required(rid, [challenge(cid, price, currency),
                               dict(challenge(cid + "b", price, currency), method="tempo")])
    elif shape == "conflicting":
        payment_required(rid, [challenge(cid, price, currency),
                               challenge(cid + "b", str(int(price) * 10), currency)])
    elif shape == "number_amount":
        payment_required(rid, [challenge(cid, int(price), currency)])
    elif shape == "fraction":
        payment_required(rid, [challenge(cid, price + ".5", currency)])
    elif shape == "no_currency":
        c = challenge(cid, price, currency)
        del c["request"]["currency"]
        payment_required(rid, [c])
    elif shape == "no_challenges":
        send({"jsonrpc": "2.0", "id": rid, "error": {
            "code": -32042, "message": "Payment Required", "data": {"httpStatus": 402}}})
    elif shape == "free":
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": "free"}]}})


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    log(line)
    msg = json.loads(line)
    method = msg.get("method")
    rid = msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "mpp-test", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [
            {"name": n, "inputSchema": {"type": "object"}}
            for n in ("generate_image", "translate")]}})
    elif method == "tools/call":
        call(rid, msg.get("params") or {})
    elif rid is not None:
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
